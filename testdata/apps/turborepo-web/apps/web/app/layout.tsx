import type { ReactNode } from "react";

export const metadata = { title: "Turborepo web", description: "A Next.js app of a Turborepo monorepo" };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
