import type { Metadata } from "next";

export const metadata: Metadata = {
  title: "Release notes",
  description: "What changed, release by release",
  icons: { icon: "/icon.svg" },
};

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: "system-ui, sans-serif", maxWidth: "40rem", margin: "0 auto" }}>{children}</body>
    </html>
  );
}
