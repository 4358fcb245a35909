import Link from "next/link";
import { ROUTES } from "@/lib/routes";
import { WeightFilter } from "./weight-filter";

export default function Home() {
  return (
    <section>
      <h1>Routes</h1>
      <p>Traffic split across {ROUTES.length} upstreams.</p>
      <table>
        <thead>
          <tr>
            <th>Route</th>
            <th>Host</th>
            <th>Weight</th>
            <th>Health</th>
          </tr>
        </thead>
        <tbody>
          {ROUTES.map((route) => (
            <tr key={route.id}>
              <td>
                <Link href={`/routes/${route.id}`}>{route.id}</Link>
              </td>
              <td>{route.host}</td>
              <td>{route.weight}%</td>
              <td className={route.healthy ? "" : "down"}>{route.healthy ? "up" : "down"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <WeightFilter routes={ROUTES.map((route) => ({ id: route.id, weight: route.weight }))} />
    </section>
  );
}
