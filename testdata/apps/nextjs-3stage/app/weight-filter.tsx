"use client";

import { useState } from "react";

/** Client-side filter: shows the routes carrying at least the chosen share of traffic. */
export function WeightFilter({ routes }: { routes: { id: string; weight: number }[] }) {
  const [minimum, setMinimum] = useState(50);
  const heavy = routes.filter((route) => route.weight >= minimum);
  return (
    <div>
      <label>
        Minimum weight {minimum}%
        <input
          type="range"
          min={0}
          max={100}
          value={minimum}
          onChange={(event) => setMinimum(Number(event.target.value))}
        />
      </label>
      <p>{heavy.map((route) => route.id).join(", ") || "none"}</p>
    </div>
  );
}
