import releases from "@/data/releases.json";

/** One published release and what changed in it. */
export type Release = { version: string; date: string; notes: string[] };

export const RELEASES: readonly Release[] = releases;

export function findRelease(version: string): Release | undefined {
  return RELEASES.find((release) => release.version === version);
}
