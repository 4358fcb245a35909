//! The outputs of `cairn build` as publishers ([`crate::publish`]): one
//! per `-o/--output` (`--push` is `type=registry`), the local store when
//! there is none. Built before the build, so a registry client that cannot
//! be made fails before any work.

use super::{OutputSpec, Sink};
use crate::publish::docker_archive::DockerArchive;
use crate::publish::filesystem::{FsTar, LocalDir};
use crate::publish::local_store::LocalStore;
use crate::publish::oci_layout::{OciDir, OciTar};
use crate::publish::registry::Push;
use crate::publish::{names_or_tags, Output, Publisher};
use crate::registry::{Registry, RegistryOptions};
use std::path::Path;

/// The publishers of `outputs` (names default to `tags`); `local_store` is
/// the store's directory, `registry` the options of a push's client.
pub(super) fn outputs(
    outputs: &[OutputSpec],
    tags: &[String],
    local_store: &Path,
    registry: &RegistryOptions,
) -> anyhow::Result<Vec<Output>> {
    let store = |names: &[String], beside_push| -> Box<dyn Publisher> {
        Box::new(LocalStore {
            dir: local_store.to_path_buf(),
            names: names.to_vec(),
            beside_push,
        })
    };
    if outputs.is_empty() {
        return Ok(vec![Output {
            publishers: vec![store(tags, false)],
            export: None,
        }]);
    }
    let mut out = Vec::with_capacity(outputs.len());
    for o in outputs {
        let names = names_or_tags(&o.names, tags);
        let image = |p: Box<dyn Publisher>| Output {
            publishers: vec![p],
            export: Some(o.export.clone()),
        };
        out.push(match &o.sink {
            Sink::Local(dir) => Output {
                publishers: vec![Box::new(LocalDir(dir.clone()))],
                export: None,
            },
            Sink::FsTar(dest) => Output {
                publishers: vec![Box::new(FsTar(dest.clone()))],
                export: None,
            },
            Sink::OciDir(dir) => image(Box::new(OciDir {
                dir: dir.clone(),
                names,
            })),
            Sink::OciTar(dest) => image(Box::new(OciTar {
                dest: dest.clone(),
                names,
            })),
            Sink::Docker(dest) => image(Box::new(DockerArchive {
                dest: dest.clone(),
                names,
            })),
            Sink::Image { push, .. } => {
                let mut publishers = vec![store(&names, *push)];
                if *push {
                    publishers.push(Box::new(Push {
                        registry: Registry::new(registry.clone())?,
                        runtime: crate::cli::pull::runtime()?,
                        names,
                    }));
                }
                Output {
                    publishers,
                    export: Some(o.export.clone()),
                }
            }
        });
    }
    Ok(out)
}
