//! Synthetic images in an OCI layout: incompressible pseudo-random layers,
//! a config with matching diff_ids, an image manifest, optionally an index.

use cairn::image::manifest::{Descriptor, PlatformSpec, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use cairn::image::oci_layout::OciLayout;

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Write an image with layers of `sizes` for `arch` into `layout`; returns its manifest descriptor.
pub fn image(layout: &OciLayout, seed: u64, sizes: &[usize], arch: &str) -> Descriptor {
    let store = layout.store();
    let mut layers = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let bytes = noise(seed * 1000 + i as u64, *n);
        let d = store.put_bytes(&bytes).unwrap();
        layers.push(Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar",
            d,
            *n as u64,
        ));
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "synthetic"})).collect::<Vec<_>>(),
    });
    let cfg = serde_json::to_vec(&config).unwrap();
    let cfg_d = store.put_bytes(&cfg).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::new(OCI_CONFIG, cfg_d, cfg.len() as u64),
        "layers": layers,
    });
    let m = serde_json::to_vec_pretty(&manifest).unwrap();
    let md = store.put_bytes(&m).unwrap();
    let mut d = Descriptor::new(OCI_MANIFEST, md, m.len() as u64);
    d.platform = Some(PlatformSpec {
        architecture: arch.into(),
        os: "linux".into(),
        ..Default::default()
    });
    d
}

/// An index over `entries`; returns its descriptor.
pub fn index(layout: &OciLayout, entries: Vec<Descriptor>) -> Descriptor {
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let b = serde_json::to_vec(&idx).unwrap();
    let d = layout.store().put_bytes(&b).unwrap();
    Descriptor::new(OCI_INDEX, d, b.len() as u64)
}

/// A fresh layout under `dir` with `tag` → a two-platform index and `tag-amd64` → the amd64 image.
pub fn two_platform_layout(
    dir: &std::path::Path,
    seed: u64,
    sizes: &[usize],
) -> (OciLayout, Descriptor, Descriptor, Descriptor) {
    let l = OciLayout::create(dir).unwrap();
    let amd = image(&l, seed, sizes, "amd64");
    let mut arm = image(&l, seed + 1, &sizes[..1], "arm64");
    arm.platform.as_mut().unwrap().variant = Some("v8".into());
    let idx = index(&l, vec![amd.clone(), arm.clone()]);
    l.tag(&idx, Some("multi")).unwrap();
    l.tag(&amd, Some("amd64")).unwrap();
    (l, idx, amd, arm)
}
