import { Card } from "@repo/ui/card";
import { StatusBadge } from "@repo/ui/status";

const links = [
  { title: "Docs", href: "https://turborepo.com/docs", text: "How the monorepo builds and caches its tasks." },
  { title: "Deploy", href: "https://nextjs.org/docs/app/building-your-application/deploying", text: "Standalone output in a container." },
];

export default function Page() {
  return (
    <main>
      <h1>Turborepo web</h1>
      <StatusBadge status="healthy" />
      {links.map((l) => (
        <Card key={l.title} title={l.title} href={l.href}>
          {l.text}
        </Card>
      ))}
    </main>
  );
}
