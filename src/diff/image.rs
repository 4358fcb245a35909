//! Image-level comparison: config field by field, layers aligned by diff_id
//! and history, the first divergent layer and the step that made it, and —
//! only for layers that really differ — a file-level comparison. Layers
//! with equal digests are never read.

use super::compare::{compare_layers, Cause, CompareOptions, LayerComparison};
use super::record::RecordDiff;
use super::tar_index::{index_layer, LayerIndex};
use crate::image::config::{History, ImageConfig};
use crate::image::Layer;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Opens a layer's (compressed or plain) tar stream.
pub type LayerOpener<'a> = dyn Fn(&Layer) -> Result<Box<dyn Read + Send>, super::Error> + Sync + 'a;

/// One side of a comparison.
pub struct ImageSide<'a> {
    /// How the user named it.
    pub name: String,
    /// Manifest digest (`None` when the source has no manifest: a docker archive).
    pub manifest_digest: Option<String>,
    /// Config digest.
    pub config_digest: String,
    /// The parsed config.
    pub config: ImageConfig,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Opens a layer lazily.
    pub open: &'a LayerOpener<'a>,
}

/// A config field that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Field (`Env PATH`, `Cmd`, `Labels version`, `history[3].created_by`…).
    pub field: String,
    /// Value in A (`-` when absent).
    pub a: String,
    /// Value in B.
    pub b: String,
}

/// How one pair of layers relates.
#[derive(Clone, Debug, Serialize)]
pub struct LayerPair {
    /// Index in A (None: only in B).
    pub a: Option<usize>,
    /// Index in B (None: only in A).
    pub b: Option<usize>,
    /// The instruction that made the layer (history `created_by`).
    pub created_by: Option<String>,
    /// `identical`, `compression-only`, `different`, `only-in-a`, `only-in-b`.
    pub status: &'static str,
    /// The file-level comparison, for different layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<LayerComparison>,
}

/// The version of the JSON schema (docs/diff-json.md); bumped on breaking changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Name of A, as the user gave it.
    pub a: String,
    /// Name of B.
    pub b: String,
    /// Manifest digests (null for a docker archive).
    pub manifest_digests: [Option<String>; 2],
    /// Digests of the indexes the manifests were selected from (`--platform`), if any
    /// (filled in by the caller).
    pub index_digests: [Option<String>; 2],
    /// Config digests.
    pub config_digests: [String; 2],
    /// Whether the images are identical: same manifest digest (or, without
    /// manifests, same config and layer digests).
    pub identical: bool,
    /// No difference is left once the `--ignore` options apply (`cairn diff` exits 0).
    pub equivalent: bool,
    /// Config fields that differ.
    pub config: Vec<ConfigDiff>,
    /// Layers, aligned.
    pub layers: Vec<LayerPair>,
    /// Position in the aligned list of the first layer that differs.
    pub first_divergent: Option<usize>,
    /// Counts per cause over all layers.
    pub causes: BTreeMap<Cause, usize>,
    /// Steps that changed, from cairn's build records (when both sides have one).
    pub build: Option<RecordDiff>,
    /// Attached SBOMs and provenance that differ (when both sides carry some;
    /// empty with `--ignore attestations`).
    pub attestations: Vec<super::attest::AttestationDiff>,
    /// Uncompressed tar bytes read to produce the report.
    pub bytes_read: u64,
    /// Compressed bytes downloaded from registries (filled in by the caller).
    pub bytes_fetched: u64,
    /// One line a person can act on.
    pub verdict: String,
}

/// Which differences to ignore.
#[derive(Clone, Debug, Default)]
pub struct IgnoreOptions {
    /// File mtimes and config/history `created`.
    pub timestamps: bool,
    /// Entry order inside layers.
    pub order: bool,
    /// History entries.
    pub history: bool,
}

fn show<T: Serialize>(v: &Option<T>) -> String {
    match v {
        None => "-".into(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

fn kv_map(list: &Option<Vec<String>>) -> BTreeMap<String, String> {
    list.iter()
        .flatten()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

fn map_diff(
    out: &mut Vec<ConfigDiff>,
    field: &str,
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            out.push(ConfigDiff {
                field: format!("{field} {k}"),
                a: x.cloned().unwrap_or_else(|| "-".into()),
                b: y.cloned().unwrap_or_else(|| "-".into()),
            });
        }
    }
}

impl IgnoreOptions {
    /// Whether anything is ignored.
    pub fn any(&self) -> bool {
        self.timestamps || self.order || self.history
    }
}

/// Field-by-field differences of two configs.
pub fn compare_configs(
    a: &ImageConfig,
    b: &ImageConfig,
    ignore: &IgnoreOptions,
) -> Vec<ConfigDiff> {
    let mut out = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(ConfigDiff {
                field: name.into(),
                a: x,
                b: y,
            });
        }
    };
    field(
        "architecture",
        a.architecture.clone(),
        b.architecture.clone(),
    );
    field("os", a.os.clone(), b.os.clone());
    field("variant", show(&a.variant), show(&b.variant));
    if !ignore.timestamps {
        field("created", show(&a.created), show(&b.created));
    }
    field("author", show(&a.author), show(&b.author));
    let (ca, cb) = (
        a.config.clone().unwrap_or_default(),
        b.config.clone().unwrap_or_default(),
    );
    field("User", show(&ca.user), show(&cb.user));
    field("WorkingDir", show(&ca.working_dir), show(&cb.working_dir));
    field("Entrypoint", show(&ca.entrypoint), show(&cb.entrypoint));
    field("Cmd", show(&ca.cmd), show(&cb.cmd));
    field(
        "ExposedPorts",
        show(&ca.exposed_ports),
        show(&cb.exposed_ports),
    );
    field("Volumes", show(&ca.volumes), show(&cb.volumes));
    field("StopSignal", show(&ca.stop_signal), show(&cb.stop_signal));
    field("Healthcheck", show(&ca.healthcheck), show(&cb.healthcheck));
    field("Shell", show(&ca.shell), show(&cb.shell));
    field("OnBuild", show(&ca.on_build), show(&cb.on_build));
    map_diff(&mut out, "Env", &kv_map(&ca.env), &kv_map(&cb.env));
    map_diff(
        &mut out,
        "Labels",
        &ca.labels.clone().unwrap_or_default(),
        &cb.labels.clone().unwrap_or_default(),
    );
    if !ignore.history {
        let n = a.history.len().max(b.history.len());
        for i in 0..n {
            let (x, y) = (a.history.get(i), b.history.get(i));
            let get = |h: Option<&History>, f: fn(&History) -> Option<String>| {
                h.and_then(f).unwrap_or_else(|| "-".into())
            };
            let mut hf = |name: &str, f: fn(&History) -> Option<String>| {
                let (vx, vy) = (get(x, f), get(y, f));
                if vx != vy {
                    out.push(ConfigDiff {
                        field: format!("history[{i}].{name}"),
                        a: vx,
                        b: vy,
                    });
                }
            };
            hf("created_by", |h| h.created_by.clone());
            if !ignore.timestamps {
                hf("created", |h| h.created.clone());
            }
            hf("empty_layer", |h| Some(h.empty_layer.to_string()));
        }
    }
    out
}

/// The `created_by` of each layer (history entries that made a layer, in order).
pub fn layer_history(config: &ImageConfig, layers: usize) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone())
        .collect();
    out.resize(layers, None);
    out
}

type Pairs = Vec<(Option<usize>, Option<usize>)>;

/// Pair `0..n` with `0..m` where `same` holds, in order (a longest common
/// subsequence); the runs between matches go to `gap(a_run, b_run)`.
fn lcs_pairs(
    n: usize,
    m: usize,
    same: impl Fn(usize, usize) -> bool,
    gap: &dyn Fn(&[usize], &[usize]) -> Pairs,
) -> Pairs {
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if same(i, j) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let (mut pend_a, mut pend_b) = (Vec::new(), Vec::new());
    while i < n || j < m {
        if i < n && j < m && same(i, j) {
            out.extend(gap(&pend_a, &pend_b));
            pend_a.clear();
            pend_b.clear();
            out.push((Some(i), Some(j)));
            i += 1;
            j += 1;
        } else if j >= m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            pend_a.push(i);
            i += 1;
        } else {
            pend_b.push(j);
            j += 1;
        }
    }
    out.extend(gap(&pend_a, &pend_b));
    out
}

/// Pair two runs (of indices) by position.
fn by_position(a: &[usize], b: &[usize]) -> Pairs {
    (0..a.len().max(b.len()))
        .map(|x| (a.get(x).copied(), b.get(x).copied()))
        .collect()
}

/// Align layers: equal diff_ids pair up in order (an LCS); between those
/// matches, layers made by the same instruction (history `created_by`) pair
/// up, and the rest pair by position.
fn align(a: &[Layer], b: &[Layer], hist_a: &[Option<String>], hist_b: &[Option<String>]) -> Pairs {
    // Runs hold absolute indices; the inner alignment works on positions in them.
    let by_history = |ra: &[usize], rb: &[usize]| -> Pairs {
        let same = |x: usize, y: usize| {
            let (ha, hb) = (&hist_a[ra[x]], &hist_b[rb[y]]);
            ha.is_some() && ha == hb
        };
        lcs_pairs(ra.len(), rb.len(), same, &by_position)
            .into_iter()
            .map(|(x, y)| (x.map(|x| ra[x]), y.map(|y| rb[y])))
            .collect()
    };
    lcs_pairs(
        a.len(),
        b.len(),
        |i, j| a[i].diff_id == b[j].diff_id,
        &by_history,
    )
}

/// The index of `side`'s layer `i`.
fn read_side(side: &ImageSide, i: usize) -> Result<LayerIndex, super::Error> {
    let l = &side.layers[i];
    index_layer((side.open)(l)?).map_err(|source| super::Error::ReadLayer {
        side: side.name.clone(),
        digest: l.digest.to_string(),
        source,
    })
}

/// Compare two images. Only layers whose diff_ids differ are read, in parallel.
pub fn compare_images(
    a: &ImageSide,
    b: &ImageSide,
    ignore: &IgnoreOptions,
    text: bool,
) -> Result<Report, super::Error> {
    let hist_a = layer_history(&a.config, a.layers.len());
    let hist_b = layer_history(&b.config, b.layers.len());
    let pairs = align(&a.layers, &b.layers, &hist_a, &hist_b);
    let opts = CompareOptions {
        text,
        ignore_timestamps: ignore.timestamps,
        ignore_order: ignore.order,
    };
    let results = read_differing(a, b, &pairs, &opts)?;
    let paired = pair_up(a, b, &pairs, (&hist_a, &hist_b), results);
    let config = compare_configs(&a.config, &b.config, ignore);
    let identical = same_bytes(a, b);
    let equivalent =
        identical || (ignore.any() && config.is_empty() && only_ignored(&paired.layers));
    let verdict = if equivalent && !identical {
        "equivalent: every difference is of a kind asked to be ignored (--ignore)".to_owned()
    } else {
        verdict(identical, &paired.layers, &config, &paired.causes)
    };
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        a: a.name.clone(),
        b: b.name.clone(),
        manifest_digests: [a.manifest_digest.clone(), b.manifest_digest.clone()],
        index_digests: [None, None],
        config_digests: [a.config_digest.clone(), b.config_digest.clone()],
        identical,
        equivalent,
        config,
        layers: paired.layers,
        first_divergent: paired.first_divergent,
        causes: paired.causes,
        build: None,
        attestations: Vec::new(),
        bytes_read: paired.bytes_read,
        bytes_fetched: 0,
        verdict,
    })
}

/// Index and compare the aligned pairs whose diff_ids differ, four at a
/// time (each pair's two layers read at once): by pair, the comparison and
/// the bytes read.
fn read_differing(
    a: &ImageSide,
    b: &ImageSide,
    pairs: &[(Option<usize>, Option<usize>)],
    opts: &CompareOptions,
) -> Result<BTreeMap<usize, (LayerComparison, u64)>, super::Error> {
    let work: Vec<(usize, usize, usize)> = pairs
        .iter()
        .enumerate()
        .filter_map(|(k, p)| match *p {
            (Some(i), Some(j)) if a.layers[i].diff_id != b.layers[j].diff_id => Some((k, i, j)),
            _ => None,
        })
        .collect();
    let mut results = BTreeMap::new();
    for chunk in work.chunks(4) {
        type Done = Result<(usize, LayerComparison, u64), super::Error>;
        let done: Vec<Done> = std::thread::scope(|s| {
            let hs: Vec<_> = chunk
                .iter()
                .map(|&(k, i, j)| {
                    s.spawn(move || -> Done {
                        let (ra, rb) = std::thread::scope(|s2| {
                            let ha = s2.spawn(|| read_side(a, i));
                            let rb = read_side(b, j);
                            (ha.join(), rb)
                        });
                        let ia = ra.map_err(|_| super::Error::Panicked("reader"))??;
                        let ib = rb?;
                        let bytes = ia.bytes_read + ib.bytes_read;
                        Ok((k, compare_layers(&ia, &ib, opts), bytes))
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(super::Error::Panicked("comparison")))
                })
                .collect()
        });
        for r in done {
            let (k, c, bytes) = r?;
            results.insert(k, (c, bytes));
        }
    }
    Ok(results)
}

/// The aligned layers, each pair with its status and what was counted.
struct Paired {
    layers: Vec<LayerPair>,
    causes: BTreeMap<Cause, usize>,
    bytes_read: u64,
    first_divergent: Option<usize>,
}

/// Name each aligned pair (`identical`, `compression-only`, `different`
/// with its file comparison from `results`, `only-in-a`, `only-in-b`) and
/// add up the causes and bytes read.
fn pair_up(
    a: &ImageSide,
    b: &ImageSide,
    pairs: &[(Option<usize>, Option<usize>)],
    (hist_a, hist_b): (&[Option<String>], &[Option<String>]),
    mut results: BTreeMap<usize, (LayerComparison, u64)>,
) -> Paired {
    let mut p = Paired {
        layers: Vec::new(),
        causes: BTreeMap::new(),
        bytes_read: 0,
        first_divergent: None,
    };
    for (k, (ia, ib)) in pairs.iter().enumerate() {
        let created_by = ib
            .and_then(|j| hist_b[j].clone())
            .or_else(|| ia.and_then(|i| hist_a[i].clone()));
        let (status, files) = match (ia, ib) {
            (Some(i), Some(j)) if a.layers[*i].digest == b.layers[*j].digest => ("identical", None),
            (Some(i), Some(j)) if a.layers[*i].diff_id == b.layers[*j].diff_id => {
                *p.causes.entry(Cause::Compression).or_default() += 1;
                ("compression-only", None)
            }
            (Some(_), Some(_)) => {
                let (c, bytes) = results.remove(&k).unwrap_or_default();
                p.bytes_read += bytes;
                for (cause, n) in &c.causes {
                    *p.causes.entry(*cause).or_default() += n;
                }
                ("different", Some(c))
            }
            (Some(_), None) => ("only-in-a", None),
            (None, _) => ("only-in-b", None),
        };
        if status != "identical" && p.first_divergent.is_none() {
            p.first_divergent = Some(k);
        }
        p.layers.push(LayerPair {
            a: *ia,
            b: *ib,
            created_by,
            status,
            files,
        });
    }
    p
}

/// The same image: the same manifest digest, or (a docker archive has no
/// manifest) the same config and layer blobs.
fn same_bytes(a: &ImageSide, b: &ImageSide) -> bool {
    match (&a.manifest_digest, &b.manifest_digest) {
        (Some(x), Some(y)) => x == y,
        _ => {
            a.config_digest == b.config_digest
                && a.layers
                    .iter()
                    .map(|l| &l.digest)
                    .eq(b.layers.iter().map(|l| &l.digest))
        }
    }
}

/// Every layer pair identical, or different only in what `--ignore` drops.
fn only_ignored(layers: &[LayerPair]) -> bool {
    layers.iter().all(|l| {
        l.status == "identical"
            || (l.status == "different"
                && l.files
                    .as_ref()
                    .is_some_and(|f| f.changes.is_empty() && !f.order_differs))
    })
}

impl Report {
    /// Attach the comparison of both sides' build records; its first root
    /// cause leads the verdict, since it says what to change in the build.
    pub fn attach_build(&mut self, d: RecordDiff) {
        if !self.identical {
            if let Some(c) = d.changes.first() {
                let more = match d.changes.len() {
                    1 => String::new(),
                    n => format!(" (and {} more steps)", n - 1),
                };
                self.verdict = format!("step {}{more}; {}", c.line(), self.verdict);
            }
        }
        self.build = Some(d);
    }

    /// Attach the attestation differences: any is a difference (exit 1),
    /// even between identical images.
    pub fn attach_attestations(&mut self, d: Vec<super::attest::AttestationDiff>) {
        if d.is_empty() {
            return;
        }
        if self.equivalent {
            self.verdict = format!(
                "the images are the same, their attestations differ ({}); \
                 --ignore attestations compares the images only",
                d.iter()
                    .map(|x| x.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        self.equivalent = false;
        self.attestations = d;
    }
}

fn step_name(created_by: &Option<String>) -> String {
    created_by
        .as_deref()
        .map(|s| {
            s.trim_end_matches(" # buildkit")
                .trim_end_matches(" # cairn")
        })
        .map(|s| {
            s.strip_prefix("RUN /bin/sh -c ")
                .map(|r| format!("RUN {r}"))
                .unwrap_or_else(|| s.to_owned())
        })
        .map(|s| {
            format!(
                "`{}`",
                if s.chars().count() > 60 {
                    s.chars().take(57).collect::<String>() + "…"
                } else {
                    s
                }
            )
        })
        .unwrap_or_else(|| "an unknown step".into())
}

fn verdict(
    identical: bool,
    layers: &[LayerPair],
    config: &[ConfigDiff],
    causes: &BTreeMap<Cause, usize>,
) -> String {
    if identical {
        return "identical: same manifest digest".into();
    }
    let differing: Vec<(usize, &LayerPair)> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.status != "identical")
        .collect();
    if differing.is_empty() {
        let fields: Vec<&str> = config.iter().map(|c| c.field.as_str()).take(4).collect();
        let is_time =
            |f: &str| f == "created" || (f.starts_with("history[") && f.ends_with("].created"));
        if !config.is_empty() && config.iter().all(|c| is_time(&c.field)) {
            return format!(
                "all layers are identical; only the image timestamps differ ({} fields: created, history): the builds used different SOURCE_DATE_EPOCH values or clocks — pin SOURCE_DATE_EPOCH",
                config.len()
            );
        }
        return if fields.is_empty() {
            "layers and config match; only the manifest differs (annotations or media types)".into()
        } else {
            format!(
                "all layers are identical; only the config differs: {}",
                fields.join(", ")
            )
        };
    }
    let single = differing.len() == 1 || differing[0].0 == differing[differing.len() - 1].0;
    let verb = |one: &'static str, many: &'static str| if single { one } else { many };
    let range = {
        let (lo, hi) = (differing[0].0 + 1, differing[differing.len() - 1].0 + 1);
        if lo == hi {
            format!("layer {lo}")
        } else {
            format!("layers {lo}–{hi}")
        }
    };
    let first = step_name(&differing[0].1.created_by);
    let only = |c: Cause| !causes.is_empty() && causes.keys().all(|k| *k == c);
    let one_sided: Vec<&LayerPair> = differing
        .iter()
        .map(|(_, l)| *l)
        .filter(|l| l.a.is_none() || l.b.is_none())
        .collect();
    if causes.is_empty() && one_sided.len() == differing.len() {
        let side = if one_sided.iter().all(|l| l.a.is_none()) {
            "B has"
        } else if one_sided.iter().all(|l| l.b.is_none()) {
            "A has"
        } else {
            "each side has"
        };
        format!(
            "{side} {} layer(s) the other lacks ({range}), first made by {first}; the layers both have are identical",
            one_sided.len()
        )
    } else if only(Cause::Timestamps) {
        format!("{range} {} only in file mtimes, first written by {first}: set SOURCE_DATE_EPOCH (cairn clamps to it) or build with cairn", verb("differs", "differ"))
    } else if only(Cause::Compression) {
        format!("{range} {} identical contents but different compression: the same tar was gzipped differently (compressor or level)", verb("has", "have"))
    } else if only(Cause::Order) {
        format!(
            "{range} {} the same files in a different order: the archiver did not sort entries",
            verb("holds", "hold")
        )
    } else {
        let known: BTreeSet<String> = differing
            .iter()
            .filter_map(|(_, l)| l.files.as_ref())
            .flat_map(|f| f.changes.iter().filter_map(|c| c.known.clone()))
            .collect();
        let top: Vec<String> = causes
            .iter()
            .map(|(c, n)| format!("{} ({n})", c.label()))
            .collect();
        let mut v = format!(
            "first difference in {range}, made by {first}; causes: {}",
            top.join(", ")
        );
        if let Some(k) = known.iter().next() {
            v.push_str(&format!("; known offender: {k}"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_layers::Digest;

    fn layer(d: &str, diff: &str) -> Layer {
        Layer {
            digest: Digest::of(d.as_bytes()),
            diff_id: cairn_layers::DiffId(Digest::of(diff.as_bytes())),
            size: 1,
            media_type: "x".into(),
        }
    }

    #[test]
    fn alignment_pairs_equal_layers_and_positions_between() {
        let a = vec![layer("1", "1"), layer("2", "2"), layer("3", "3")];
        let b = vec![
            layer("1", "1"),
            layer("9", "9"),
            layer("3", "3"),
            layer("4", "4"),
        ];
        assert_eq!(
            align(&a, &b, &vec![None; 3], &vec![None; 4]),
            vec![
                (Some(0), Some(0)),
                (Some(1), Some(1)),
                (Some(2), Some(2)),
                (None, Some(3))
            ]
        );
    }

    #[test]
    fn between_equal_layers_the_same_instruction_pairs_before_position() {
        let h =
            |s: &[&str]| -> Vec<Option<String>> { s.iter().map(|x| Some(x.to_string())).collect() };
        let a = vec![layer("1", "1"), layer("2", "2"), layer("3", "3")];
        let b = vec![
            layer("1", "1"),
            layer("7", "7"),
            layer("8", "8"),
            layer("9", "9"),
        ];
        let pairs = align(
            &a,
            &b,
            &h(&["FROM", "RUN npm ci", "COPY . ."]),
            &h(&["FROM", "RUN apk add git", "RUN npm ci", "COPY . ."]),
        );
        assert_eq!(
            pairs,
            vec![
                (Some(0), Some(0)),
                (None, Some(1)),
                (Some(1), Some(2)),
                (Some(2), Some(3))
            ]
        );
    }

    #[test]
    fn equal_layers_are_never_opened_and_compression_only_is_named() {
        let never: &LayerOpener = &|_l| panic!("must not be read");
        let cfg = ImageConfig::default();
        let side = |layers, m: &str| ImageSide {
            name: m.into(),
            manifest_digest: Some(m.into()),
            config_digest: "c".into(),
            config: cfg.clone(),
            layers,
            open: never,
        };
        let a = side(vec![layer("d1", "x1"), layer("d2", "x2")], "A");
        let b = side(vec![layer("d1", "x1"), layer("d3", "x2")], "B");
        let r = compare_images(&a, &b, &IgnoreOptions::default(), false).unwrap();
        assert_eq!(r.layers[1].status, "compression-only");
        assert_eq!(r.first_divergent, Some(1));
        assert_eq!(r.bytes_read, 0);
        assert!(r.verdict.contains("different compression"), "{}", r.verdict);
    }

    #[test]
    fn an_extra_layer_is_named_not_mistaken_for_timestamps() {
        let never: &LayerOpener = &|_l| panic!("must not be read");
        let side = |layers, m: &str| ImageSide {
            name: m.into(),
            manifest_digest: Some(m.into()),
            config_digest: "c".into(),
            config: ImageConfig::default(),
            layers,
            open: never,
        };
        let a = side(vec![layer("d1", "x1")], "A");
        let b = side(vec![layer("d1", "x1"), layer("d2", "x2")], "B");
        let r = compare_images(&a, &b, &IgnoreOptions::default(), false).unwrap();
        assert_eq!(r.layers[1].status, "only-in-b");
        assert!(
            r.verdict
                .starts_with("B has 1 layer(s) the other lacks (layer 2)"),
            "{}",
            r.verdict
        );
        assert!(!r.equivalent);
    }

    #[test]
    fn config_fields_are_compared_one_by_one() {
        let mut a = ImageConfig::default();
        let mut b = ImageConfig::default();
        a.run_config_mut().set_env("NODE_ENV", "production");
        b.run_config_mut().set_env("NODE_ENV", "development");
        b.run_config_mut().user = Some("nextjs".into());
        let d = compare_configs(&a, &b, &IgnoreOptions::default());
        let fields: Vec<&str> = d.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["User", "Env NODE_ENV"]);
    }
}
