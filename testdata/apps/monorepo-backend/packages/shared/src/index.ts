/** The body every service of the platform answers on its health endpoint. */
export type Health = { status: "healthy" };

export function health(): Health {
  return { status: "healthy" };
}

/** Parses a TCP port from the environment, falling back when unset; throws on garbage. */
export function parsePort(value: string | undefined, fallback: number): number {
  if (value === undefined || value === "") {
    return fallback;
  }
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`invalid port ${JSON.stringify(value)}: expected an integer in 1..65535`);
  }
  return port;
}
