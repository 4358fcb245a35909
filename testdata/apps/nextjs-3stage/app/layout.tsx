import type { Metadata } from "next";
import "./globals.css";

export const metadata: Metadata = {
  title: "Traffic Control Plane",
  description: "Routes, weights and upstream health",
};

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body>
        <header>
          <a href="/">Traffic Control Plane</a>
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}
