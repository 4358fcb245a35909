//! `--annotation [TYPE[,TYPE…]:]KEY=VALUE` as buildx spells it. TYPE is
//! `manifest` (the default: each image manifest), `index` (the index of a
//! multi-platform build), `manifest-descriptor` (the index's entry for each
//! image) or `index-descriptor` (the index's descriptor in an OCI layout);
//! `manifest` and `manifest-descriptor` take a platform in brackets
//! (`manifest[linux/arm64]:K=V`) to annotate that platform's only. Checked
//! before any work: an unknown type, a platform the build does not make, or
//! an index level on a build that makes no index is an error.

use crate::engine::multi::IndexAnnotations;
use crate::frontend::Platform;
use std::collections::BTreeMap;

const TYPES: &str = "manifest, index, manifest-descriptor, index-descriptor";

/// The annotations of every image manifest, and the rest (platform-specific
/// manifest ones and the index levels), for a build of `platforms` (empty:
/// the host's).
pub(super) fn parse(
    items: &[String],
    platforms: &[Platform],
) -> anyhow::Result<(BTreeMap<String, String>, IndexAnnotations)> {
    let host = [Platform::host()];
    let built = if platforms.is_empty() {
        &host[..]
    } else {
        platforms
    };
    let mut all = BTreeMap::new();
    let mut ann = IndexAnnotations::default();
    for item in items {
        let bad = |what: String, fix: &str| {
            crate::cli::hint::hint(anyhow::anyhow!("--annotation `{item}`: {what}"), fix)
        };
        let (k, v) = item.split_once('=').ok_or_else(|| {
            bad(
                "expected [TYPE:]KEY=VALUE".into(),
                "write KEY=VALUE, e.g. org.opencontainers.image.source=https://…",
            )
        })?;
        let (types, key) = match k.split_once(':') {
            Some((t, key)) => (Some(t), key),
            None => (None, k),
        };
        if key.is_empty() {
            return Err(bad("the key is empty".into(), "write [TYPE:]KEY=VALUE"));
        }
        let (key, v) = (key.to_owned(), v.to_owned());
        let Some(types) = types else {
            all.insert(key, v);
            continue;
        };
        for t in types.split(',') {
            let (level, platform) = match t.split_once('[') {
                Some((level, rest)) => {
                    let p = rest.strip_suffix(']').ok_or_else(|| {
                        bad(
                            format!("`{t}` lacks its closing `]`"),
                            "write TYPE[os/arch]:KEY=VALUE",
                        )
                    })?;
                    let p = Platform::parse(p).map_err(|e| {
                        bad(
                            format!("platform `{p}`: {e}"),
                            "write TYPE[os/arch]:KEY=VALUE, e.g. manifest[linux/arm64]:K=V",
                        )
                    })?;
                    if !built.contains(&p) {
                        let list: Vec<String> = built.iter().map(ToString::to_string).collect();
                        return Err(bad(
                            format!(
                                "this build makes no {p} image (platforms: {})",
                                list.join(", ")
                            ),
                            "name a platform of --platform",
                        ));
                    }
                    (level, Some(p))
                }
                None => (t, None),
            };
            match (level, platform) {
                ("manifest", None) => {
                    all.insert(key.clone(), v.clone());
                }
                ("manifest", Some(p)) => ann.manifest.push((p, key.clone(), v.clone())),
                ("index" | "manifest-descriptor" | "index-descriptor", _) if built.len() < 2 => {
                    return Err(bad(
                        format!("`{level}` annotates the index of a multi-platform build; this build makes one image, so it annotates the image manifest only"),
                        "build several platforms (--platform linux/amd64,linux/arm64), or write KEY=VALUE (manifest)",
                    ));
                }
                ("manifest-descriptor", p) => {
                    ann.manifest_descriptor.push((p, key.clone(), v.clone()))
                }
                ("index" | "index-descriptor", Some(_)) => {
                    return Err(bad(
                        format!("`{level}` takes no platform: a build has one index"),
                        "drop the [platform]",
                    ));
                }
                ("index", None) => {
                    ann.index.insert(key.clone(), v.clone());
                }
                ("index-descriptor", None) => {
                    ann.index_descriptor.insert(key.clone(), v.clone());
                }
                _ => {
                    return Err(bad(
                        format!("unknown annotation type `{level}`"),
                        &format!(
                            "use one of {TYPES}, several separated by commas (index,manifest:K=V)"
                        ),
                    ))
                }
            }
        }
    }
    Ok((all, ann))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    fn items(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn levels_and_platforms_as_buildx() {
        let two = [p("linux/amd64"), p("linux/arm64")];
        let (all, ann) = parse(
            &items(&[
                "a=1",
                "manifest:b=2",
                "index,manifest:c=3",
                "manifest[linux/arm64]:d=4",
                "manifest-descriptor:e=5",
                "manifest-descriptor[linux/amd64]:f=6",
                "index-descriptor:g=h=7",
            ]),
            &two,
        )
        .unwrap();
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2"), ("c", "3")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(ann.index.get("c").map(String::as_str), Some("3"));
        assert_eq!(ann.manifest, [(p("linux/arm64"), "d".into(), "4".into())]);
        assert_eq!(
            ann.manifest_descriptor,
            [
                (None, "e".into(), "5".into()),
                (Some(p("linux/amd64")), "f".into(), "6".into())
            ]
        );
        assert_eq!(
            ann.index_descriptor.get("g").map(String::as_str),
            Some("h=7")
        );
    }

    #[test]
    fn wrong_annotations_are_refused_with_the_fix() {
        let two = [p("linux/amd64"), p("linux/arm64")];
        for (flag, platforms, says) in [
            ("index:a=b", &two[..1], "annotates the image manifest only"),
            ("index-descriptor:a=b", &[][..], "multi-platform build"),
            (
                "manifest[linux/s390x]:a=b",
                &two[..],
                "no linux/s390x image",
            ),
            ("index[linux/amd64]:a=b", &two[..], "takes no platform"),
            (
                "manifests:a=b",
                &two[..],
                "unknown annotation type `manifests`",
            ),
            ("org.example:a=b", &two[..], "unknown annotation type"),
            ("manifest[linux/amd64:a=b", &two[..], "closing"),
            ("manifest:=b", &two[..], "key is empty"),
            ("novalue", &two[..], "expected [TYPE:]KEY=VALUE"),
        ] {
            let e = format!("{:#}", parse(&items(&[flag]), platforms).unwrap_err());
            assert!(e.contains(says) && e.contains(flag), "{flag}: {e}");
        }
    }
}
