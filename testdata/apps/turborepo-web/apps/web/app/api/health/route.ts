import { statusBody } from "@repo/ui/status";

export const dynamic = "force-dynamic";

export function GET() {
  return Response.json(statusBody("healthy"));
}
