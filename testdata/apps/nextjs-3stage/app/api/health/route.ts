// Liveness probe used by the image's HEALTHCHECK; evaluated per request, never prerendered.
export const dynamic = "force-dynamic";

export function GET() {
  return Response.json({ status: "healthy" });
}
