type Asset = { tag: string; name: string; location: string };

/** Fills the asset list from the API (served on the same origin behind a proxy in production). */
async function load(list: HTMLElement): Promise<void> {
  const response = await fetch("/api/assets");
  if (!response.ok) {
    list.textContent = `could not load assets: HTTP ${response.status}`;
    return;
  }
  const assets = (await response.json()) as Asset[];
  list.replaceChildren(
    ...assets.map((asset) => {
      const item = document.createElement("li");
      item.textContent = `${asset.tag}: ${asset.name} (${asset.location})`;
      return item;
    }),
  );
}

const list = document.getElementById("assets");
if (list) {
  void load(list);
}
