//! `--sbom` and `--provenance`, spelled as `docker buildx build` spells them.
//!
//! - `--sbom` (= `true`), `--sbom=false`, `--sbom=format=spdx|cyclonedx`,
//!   `--sbom=true,scan-stage=true` (also the stages the target is built
//!   with, as BuildKit's `BUILDKIT_SBOM_SCAN_STAGE`);
//! - `--provenance` (= `mode=min`), `--provenance=false`,
//!   `--provenance=mode=min|max` (also `min`/`max`/`true`). Provenance in
//!   `min` mode is on unless `--provenance=false` or
//!   `BUILDX_NO_DEFAULT_ATTESTATIONS` is set, as in buildx;
//!   `--provenance=mode=max,builder-id=URI` names the builder (BuildKit's
//!   `builder-id` attestation parameter; CI jobs pass their run's URL), else
//!   it is [`DEFAULT_BUILDER_ID`].

use super::Error;

/// The SBOM document format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON (the default, as BuildKit's).
    Spdx,
    /// CycloneDX 1.6 JSON.
    CycloneDx,
}

/// How much the provenance tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvenanceMode {
    /// Inputs only: Dockerfile, context, bases, target, platform, build args.
    Min,
    /// Also every step with its cache key.
    Max,
}

/// The provenance's `builder.id` unless `builder-id=` names another:
/// cairn at its version, as a package URL. cairn runs on the user's own
/// machine or CI runner, so there is no hosted build platform to name; the
/// party that runs it (a CI system) knows its identity and passes it.
pub const DEFAULT_BUILDER_ID: &str = concat!("pkg:generic/cairn@", env!("CARGO_PKG_VERSION"));

/// What to attest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `--sbom`: the format, and whether the build stages are scanned too.
    pub sbom: Option<(SbomFormat, bool)>,
    /// `--provenance`.
    pub provenance: Option<ProvenanceMode>,
    /// `--provenance builder-id=URI` (`None`: [`DEFAULT_BUILDER_ID`]).
    pub builder_id: Option<String>,
}

impl Options {
    /// Nothing to attach.
    pub fn is_empty(&self) -> bool {
        self.sbom.is_none() && self.provenance.is_none()
    }
}

fn bool_value(flag: &'static str, v: &str) -> Result<bool, Error> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::NotBool {
            flag,
            value: v.to_owned(),
        }),
    }
}

/// Parse `--sbom[=VALUE]` (`None`: not given).
pub fn parse_sbom(value: Option<&str>) -> Result<Option<(SbomFormat, bool)>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (mut on, mut format, mut stages) = (true, SbomFormat::Spdx, false);
    for item in value.split(',').map(str::trim) {
        match item.split_once('=') {
            None => on = bool_value("--sbom", item)?,
            Some(("format", "spdx" | "spdx-json")) => format = SbomFormat::Spdx,
            Some(("format", "cyclonedx" | "cyclonedx-json")) => format = SbomFormat::CycloneDx,
            Some(("scan-stage", v)) => stages = bool_value("--sbom scan-stage", v)?,
            Some(("enabled", v)) => on = bool_value("--sbom enabled", v)?,
            Some((k, v)) => {
                return Err(Error::UnknownSbomSetting {
                    key: k.to_owned(),
                    value: v.to_owned(),
                })
            }
        }
    }
    Ok(on.then_some((format, stages)))
}

/// Parse `--provenance[=VALUE]`; `None` (not given) is `min` unless
/// `no_default` (`BUILDX_NO_DEFAULT_ATTESTATIONS`).
pub fn parse_provenance(
    value: Option<&str>,
    no_default: bool,
) -> Result<Option<ProvenanceMode>, Error> {
    let Some(value) = value else {
        return Ok((!no_default).then_some(ProvenanceMode::Min));
    };
    let (mut on, mut mode) = (true, ProvenanceMode::Min);
    for item in value.split(',').map(str::trim) {
        match item {
            "min" | "mode=min" => mode = ProvenanceMode::Min,
            "max" | "mode=max" => mode = ProvenanceMode::Max,
            _ => match item.split_once('=') {
                None => on = bool_value("--provenance", item)?,
                Some(("enabled", v)) => on = bool_value("--provenance enabled", v)?,
                Some(("builder-id", _)) => {}
                Some((k, v)) => {
                    return Err(Error::UnknownProvenanceSetting {
                        key: k.to_owned(),
                        value: v.to_owned(),
                    })
                }
            },
        }
    }
    Ok(on.then_some(mode))
}

/// The `builder-id=URI` of `--provenance[=VALUE]`: an absolute URI without
/// credentials (it is published with the image).
pub fn parse_builder_id(value: Option<&str>) -> Result<Option<String>, Error> {
    let Some(raw) = value
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|item| item.trim().strip_prefix("builder-id="))
        .next_back()
    else {
        return Ok(None);
    };
    let uri = url::Url::parse(raw).map_err(|reason| Error::BuilderIdNotUri {
        raw: raw.to_owned(),
        reason,
    })?;
    if !uri.username().is_empty() || uri.password().is_some() {
        return Err(Error::BuilderIdCredentials);
    }
    Ok(Some(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbom_spellings() {
        assert_eq!(parse_sbom(None).unwrap(), None);
        assert_eq!(
            parse_sbom(Some("true")).unwrap(),
            Some((SbomFormat::Spdx, false))
        );
        assert_eq!(parse_sbom(Some("false")).unwrap(), None);
        assert_eq!(
            parse_sbom(Some("format=cyclonedx,scan-stage=true")).unwrap(),
            Some((SbomFormat::CycloneDx, true))
        );
        let e = parse_sbom(Some("format=syft")).unwrap_err();
        assert!(format!("{e:#}").contains("--sbom"), "{e:#}");
        assert!(parse_sbom(Some("scan-stage=yes")).is_err());
    }

    #[test]
    fn provenance_spellings() {
        assert_eq!(
            parse_provenance(None, false).unwrap(),
            Some(ProvenanceMode::Min)
        );
        assert_eq!(parse_provenance(None, true).unwrap(), None);
        assert_eq!(parse_provenance(Some("false"), false).unwrap(), None);
        assert_eq!(
            parse_provenance(Some("mode=max"), false).unwrap(),
            Some(ProvenanceMode::Max)
        );
        assert_eq!(
            parse_provenance(Some("true"), true).unwrap(),
            Some(ProvenanceMode::Min)
        );
        assert!(parse_provenance(Some("mode=full"), false).is_err());
        assert_eq!(
            parse_provenance(Some("mode=max,builder-id=https://ci.example/r/1"), false).unwrap(),
            Some(ProvenanceMode::Max)
        );
    }

    #[test]
    fn builder_ids() {
        assert_eq!(parse_builder_id(None).unwrap(), None);
        assert_eq!(parse_builder_id(Some("mode=max")).unwrap(), None);
        assert_eq!(
            parse_builder_id(Some("mode=max,builder-id=https://ci.example/runs/7")).unwrap(),
            Some("https://ci.example/runs/7".into())
        );
        let e = parse_builder_id(Some("builder-id=my builder")).unwrap_err();
        assert!(format!("{e:#}").contains("not an absolute URI"), "{e:#}");
        let e = parse_builder_id(Some("builder-id=https://u:secret@ci.example/")).unwrap_err();
        assert!(!format!("{e:#}").contains("secret"), "{e:#}");
        assert!(DEFAULT_BUILDER_ID.starts_with("pkg:generic/cairn@"));
    }
}
