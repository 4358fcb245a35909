export type Status = "healthy" | "degraded";

export function statusBody(status: Status) {
  return { status };
}

export function StatusBadge({ status }: { status: Status }) {
  return <span data-status={status}>{status === "healthy" ? "all systems go" : "degraded"}</span>;
}
