import type { ReactNode } from "react";

export function Card({ title, href, children }: { title: string; href: string; children: ReactNode }) {
  return (
    <a href={href} style={{ display: "block", padding: "1rem", border: "1px solid #ccc", borderRadius: 8 }}>
      <h2>{title} &rarr;</h2>
      <p>{children}</p>
    </a>
  );
}
