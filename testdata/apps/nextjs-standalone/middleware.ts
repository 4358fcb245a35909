import { NextResponse } from "next/server";

/** Security headers on every page (runs in the edge runtime, traced into the standalone output). */
export function middleware() {
  const response = NextResponse.next();
  response.headers.set("X-Content-Type-Options", "nosniff");
  response.headers.set("Referrer-Policy", "same-origin");
  return response;
}

export const config = { matcher: "/((?!_next/static|api/health).*)" };
