//! Finding OCI 1.1 referrers of a manifest (artifacts whose `subject` is it,
//! such as cairn's build record): the referrers API
//! (`GET /v2/<name>/referrers/<digest>`) where the registry has it, else the
//! referrers tag schema (the index tagged `<alg>-<hex>`), as the
//! distribution-spec tells clients to do.

use super::auth::repository_scope;
use super::push::referrers_tag;
use super::{repo_url, Reference, Registry, RegistryError, Repository};
use crate::image::manifest::{Descriptor, ImageIndex, OCI_INDEX};
use crate::image::MediaType;
use cairn_layers::Digest;
use reqwest::header::ACCEPT;
use reqwest::Method;

/// Referrers lists larger than this are refused (a build has a handful).
const LIST_MAX: usize = 4 << 20;

impl Registry {
    /// The referrers of `subject` in `repo` whose `artifactType` is
    /// `artifact_type`, in the order the registry lists them. None is not an
    /// error.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let (host, base) = self.endpoint(repo).await?;
        let scopes = [repository_scope(repo.path(), false)];
        let mut url = repo_url(&base, repo, &format!("referrers/{subject}"))?;
        url.query_pairs_mut()
            .append_pair("artifactType", artifact_type);
        let resp = self
            .t
            .send(&host, &scopes, Method::GET, &url, true, &|r| {
                r.header(ACCEPT, OCI_INDEX)
            })
            .await?;
        let is_index = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with(OCI_INDEX));
        let index: ImageIndex = if resp.status().is_success() && is_index {
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| super::error::transport(&Method::GET, &url, e))?;
            if bytes.len() > LIST_MAX {
                return Err(RegistryError::Manifest {
                    reference: format!("{}@{subject}", repo),
                    reason: format!("referrers list larger than {LIST_MAX} bytes"),
                });
            }
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::Manifest {
                reference: format!("{}@{subject}", repo),
                reason: format!("invalid referrers list: {e}"),
            })?
        } else {
            // No referrers API (distribution 2.8 answers 404): the tag schema.
            let tagged = Reference::new(repo.clone(), Some(referrers_tag(subject)), None);
            match self.fetch_manifest(&tagged).await {
                Ok(raw) => {
                    serde_json::from_slice(&raw.bytes).map_err(|e| RegistryError::Manifest {
                        reference: tagged.to_string(),
                        reason: format!("the referrers tag does not hold an index: {e}"),
                    })?
                }
                Err(RegistryError::Status { status: 404, .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        };
        Ok(index
            .manifests
            .into_iter()
            .filter(|d| d.artifact_type.as_ref().map(MediaType::as_str) == Some(artifact_type))
            .collect())
    }
}
