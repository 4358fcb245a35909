import Link from "next/link";
import { RELEASES } from "@/lib/releases";

export default function Home() {
  return (
    <>
      <h1>Release notes</h1>
      <ul>
        {RELEASES.map((release) => (
          <li key={release.version}>
            <Link href={`/releases/${release.version}`}>{release.version}</Link> ({release.date})
          </li>
        ))}
      </ul>
    </>
  );
}
