import { notFound } from "next/navigation";
import { RELEASES, findRelease } from "@/lib/releases";

export function generateStaticParams() {
  return RELEASES.map((release) => ({ version: release.version }));
}

export default async function ReleasePage({ params }: { params: Promise<{ version: string }> }) {
  const { version } = await params;
  const release = findRelease(version);
  if (!release) {
    notFound();
  }
  return (
    <>
      <h1>{release.version}</h1>
      <p>Released {release.date}</p>
      <ul>
        {release.notes.map((note) => (
          <li key={note}>{note}</li>
        ))}
      </ul>
    </>
  );
}
