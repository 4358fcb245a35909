//! A fresh runner's first miss fetches the blobs the hits below it left
//! behind ahead of the step that reads them, on several threads, unpacking
//! them as they download; a build whose every step hits still downloads no
//! layer, and a corrupt blob is still refused, its step rebuilt, nothing of
//! it kept — neither the blob nor a layer directory (real `docker-registry`).

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

/// A build from cache `from` that refuses a layer (and rebuilds its step).
fn build_refusing(
    home: &std::path::Path,
    ctx: &std::path::Path,
    from: &str,
) -> (String, Vec<serde_json::Value>) {
    let (digest, events) = build_json(home, ctx, &["--cache-from", from]);
    assert!(
        events
            .iter()
            .filter_map(|e| e["message"].as_str())
            .any(|m| m.contains("refused the layer")),
        "{events:?}"
    );
    (digest, events)
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
    // A RUN follows: each was unpacked as it downloaded, and every blob
    // kept verifies.
    assert_eq!(
        import_count(&events, "unpacked as they downloaded"),
        hits + base,
        "{events:?}"
    );
    assert!(local_blobs_verify(&t.path().join("r3")) as u64 >= hits + base);
    let (cold, _) = build_json(&t.path().join("r4"), &ctx, &[]);
    assert_eq!(edited, cold);

    // The cache's layer bytes changed in the registry's storage: the fetch
    // ahead of each fails its digest, the step that reads it refuses it and
    // rebuilds; the image is still a cold build's and no blob kept is corrupt.
    corrupt_entry_layers(&reg, "app/cache");
    std::fs::write(ctx.join("a.txt"), "edited again\n").unwrap();
    let r5 = t.path().join("r5");
    let (poisoned, events) = build_refusing(&r5, &ctx, &from);
    assert_eq!(import_count(&events, "blobs fetched"), 0, "{events:?}");
    let (cold, _) = build_json(&t.path().join("r6"), &ctx, &[]);
    assert_eq!(poisoned, cold);
    assert!(local_blobs_verify(&r5) > 0);
}

/// Flip one byte of `needle`'s first occurrence in every blob of the
/// registry's storage holding it: each stays a valid tar of its size whose
/// digest no longer matches. How many were changed.
fn tamper_blobs(reg: &crate::support::registry::TestRegistry, needle: &[u8]) -> usize {
    let blobs = reg.storage().join("data/docker/registry/v2/blobs/sha256");
    let mut n = 0;
    for data in std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|b| b.path().join("data"))
    {
        let mut bytes = std::fs::read(&data).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at] ^= 0x01;
            std::fs::write(&data, bytes).unwrap();
            n += 1;
        }
    }
    n
}

#[test]
fn a_layer_changed_in_the_registry_is_refused_unpacked_nowhere_and_not_kept() {
    let (reg, t, ctx) = on_pushed_base(
        "WORKDIR /app\nCOPY one.bin ./\nCOPY a.txt ./\nRUN sha256sum one.bin a.txt > sums\n\
         FROM scratch\nCOPY --from=0 /app/sums /sums\n",
        &[("a.txt", "alpha\n")],
    );
    let addr = reg.addr();
    let one = noise(700_000, 3);
    std::fs::write(ctx.join("one.bin"), &one).unwrap();
    let to = format!("type=registry,ref={addr}/app/cache,mode=max");
    let from = format!("type=registry,ref={addr}/app/cache");
    build_json(&t.path().join("r1"), &ctx, &["--cache-to", &to]);
    // one.bin's layer (of a stage not exported: a plain tar, its diff_id
    // its digest, hashed once, by the download) now holds other bytes of
    // the same size: it unpacks fine, only its digest tells.
    assert_eq!(tamper_blobs(&reg, &one[300_000..300_064]), 1);

    std::fs::write(ctx.join("a.txt"), "edited\n").unwrap();
    let r2 = t.path().join("r2");
    let (built, _) = build_refusing(&r2, &ctx, &from);
    let (cold, _) = build_json(&t.path().join("r3"), &ctx, &[]);
    assert_eq!(built, cold, "the RUN read the changed bytes");
    // No blob of the changed bytes is kept, under any name.
    assert!(local_blobs_verify(&r2) > 0);
    // The layer directory of one.bin is the one the step rebuilt: the
    // changed bytes, unpacked as they arrived, were never published.
    let mut found = 0;
    for form in std::fs::read_dir(r2.join("cache/layers"))
        .unwrap()
        .flatten()
    {
        for dir in std::fs::read_dir(form.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = dir.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".unpack-"), "staging left: {name}");
            if let Ok(bytes) = std::fs::read(dir.path().join("app/one.bin")) {
                assert!(bytes == one, "changed bytes published in {name}");
                found += 1;
            }
        }
    }
    assert_eq!(found, 1);
}
