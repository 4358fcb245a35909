import { notFound } from "next/navigation";
import { ROUTES, findRoute } from "@/lib/routes";

export function generateStaticParams() {
  return ROUTES.map((route) => ({ id: route.id }));
}

export default async function RoutePage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const route = findRoute(id);
  if (!route) {
    notFound();
  }
  return (
    <section>
      <h1>{route.id}</h1>
      <dl>
        <dt>Host</dt>
        <dd>{route.host}</dd>
        <dt>Upstream</dt>
        <dd>{route.upstream}</dd>
        <dt>Weight</dt>
        <dd>{route.weight}%</dd>
      </dl>
    </section>
  );
}
