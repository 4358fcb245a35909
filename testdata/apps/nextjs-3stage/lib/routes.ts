/** One upstream route managed by the control plane. */
export type Route = {
  id: string;
  host: string;
  upstream: string;
  weight: number;
  healthy: boolean;
};

/** The routes shown by the dashboard (static so that prerendered pages are reproducible). */
export const ROUTES: readonly Route[] = [
  { id: "checkout", host: "shop.example.test", upstream: "10.0.4.11:8080", weight: 80, healthy: true },
  { id: "checkout-canary", host: "shop.example.test", upstream: "10.0.4.12:8080", weight: 20, healthy: true },
  { id: "search", host: "search.example.test", upstream: "10.0.7.3:9200", weight: 100, healthy: false },
  { id: "assets", host: "cdn.example.test", upstream: "10.0.9.40:80", weight: 100, healthy: true },
];

export function findRoute(id: string): Route | undefined {
  return ROUTES.find((route) => route.id === id);
}
