//! Listing a repository's tags (`GET /v2/<name>/tags/list`, following the
//! `Link` header's pages), for the registry step cache
//! (`cache::remote::registry`), which names each entry by a tag.

use super::auth::repository_scope;
use super::{repo_url, Registry, RegistryError, Repository};
use reqwest::Method;

/// Pages followed at most (a cache of 100 000 entries at 1000 a page).
const MAX_PAGES: usize = 100;

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Registry {
    /// Every tag of `repo` (none, not an error, when the repository does not exist).
    pub async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let (host, base) = self.endpoint(repo).await?;
        let scopes = [repository_scope(repo.path(), false)];
        let mut url = repo_url(&base, repo, "tags/list")?;
        url.query_pairs_mut().append_pair("n", "1000");
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self
                .t
                .send(&host, &scopes, Method::GET, &url, true, &|r| r)
                .await?;
            if resp.status().as_u16() == 404 {
                return Ok(out);
            }
            if !resp.status().is_success() {
                return Err(super::transport::status_error(&Method::GET, &url, resp).await);
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| super::error::transport(&Method::GET, &url, e))?;
            let list: TagList =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                    url: super::error::redact_url(&url),
                    reason: format!("invalid tag list: {e}"),
                })?;
            out.extend(list.tags.unwrap_or_default());
            match next.and_then(|n| url.join(&n).ok()) {
                Some(u) => url = u,
                None => return Ok(out),
            }
        }
        Ok(out)
    }
}

/// The target of `<…>; rel="next"` in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        assert_eq!(
            super::next_link("</v2/a/tags/list?last=x&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(super::next_link("</x>; rel=\"prev\""), None);
    }
}
