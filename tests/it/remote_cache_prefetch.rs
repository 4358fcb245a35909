//! A fresh runner's first miss fetches the blobs the hits below it left
//! behind ahead of the step that reads them, on several threads; a build
//! whose every step hits still downloads no layer, and a corrupt blob is
//! still refused, its step rebuilt, nothing of it kept (real
//! `docker-registry`).

use crate::remote_cache::{build_json, transfer};
use crate::remote_cache_faults::{corrupt_entry_layers, local_blobs_verify};
use crate::remote_cache_lazy_base::on_pushed_base;

/// The number before `words` in the build's `cache import` summary (0
/// when the words are absent).
fn import_count(events: &[serde_json::Value], words: &str) -> u64 {
    let line = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.starts_with("cache import"))
        .unwrap_or_else(|| panic!("no cache import summary: {events:?}"));
    line.find(words).map_or(0, |at| {
        let before = line[..at].trim_end();
        let n = before.rsplit([' ', ':']).next().unwrap_or_default();
        n.parse()
            .unwrap_or_else(|_| panic!("no count before {words:?} in {line}"))
    })
}

/// `n` bytes that do not compress much, the same every run.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_fresh_runners_miss_fetches_the_layers_below_it_ahead_and_refuses_poison() {
    let (reg, t, ctx) = on_pushed_base(
        "WORKDIR /app\nCOPY one.bin ./\nCOPY two.bin ./\nCOPY a.txt ./\n\
         RUN cat one.bin two.bin a.txt | wc -c > total\n",
        &[("a.txt", "alpha\n")],
    );
    let addr = reg.addr();
    std::fs::write(ctx.join("one.bin"), noise(600_000, 1)).unwrap();
    std::fs::write(ctx.join("two.bin"), noise(900_000, 2)).unwrap();
    let to = format!("type=registry,ref={addr}/app/cache,mode=max");
    let from = format!("type=registry,ref={addr}/app/cache");
    let image = format!("{addr}/app:1");
    let push = ["-t", &image, "--push"];
    build_json(
        &t.path().join("r1"),
        &ctx,
        &[&["--cache-to", &to][..], &push].concat(),
    );

    // Every step hits, the image is pushed registry-side: no layer is
    // fetched, ahead or not.
    let (_, events) = build_json(
        &t.path().join("r2"),
        &ctx,
        &[&["--cache-from", &from][..], &push].concat(),
    );
    assert_eq!(
        transfer(&events, &addr)["downloaded"]["layer_bytes"],
        0,
        "{events:?}"
    );
    assert_eq!(import_count(&events, "fetched ahead"), 0, "{events:?}");

    // The COPY of a.txt misses, the RUN after it reads every layer below:
    // each blob this build fetched (the hits' and the base's) was fetched
    // ahead of the step that reads it, and the image is a cold build's.
    std::fs::write(ctx.join("a.txt"), "edited\n").unwrap();
    let (edited, events) = build_json(&t.path().join("r3"), &ctx, &["--cache-from", &from]);
    let (hits, base) = (
        import_count(&events, "blobs fetched"),
        import_count(&events, "base layers pulled"),
    );
    assert!(hits >= 3 && base >= 1, "{events:?}");
    assert_eq!(
        import_count(&events, "fetched ahead"),
        hits + base,
        "{events:?}"
    );
    let (cold, _) = build_json(&t.path().join("r4"), &ctx, &[]);
    assert_eq!(edited, cold);

    // The cache's layer bytes changed in the registry's storage: the fetch
    // ahead of each fails its digest, the step that reads it refuses it and
    // rebuilds; the image is still a cold build's and no blob kept is corrupt.
    corrupt_entry_layers(&reg, "app/cache");
    std::fs::write(ctx.join("a.txt"), "edited again\n").unwrap();
    let r5 = t.path().join("r5");
    let (poisoned, events) = build_json(&r5, &ctx, &["--cache-from", &from]);
    let said: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        said.iter().any(|m| m.contains("refused the layer")),
        "{said:?}"
    );
    assert_eq!(import_count(&events, "blobs fetched"), 0, "{said:?}");
    let (cold, _) = build_json(&t.path().join("r6"), &ctx, &[]);
    assert_eq!(poisoned, cold);
    assert!(local_blobs_verify(&r5) > 0);
}
