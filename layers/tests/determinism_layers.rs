//! The same entries give the same bytes whatever the thread count, the run,
//! or where a file's bytes come from.

mod support;

use cairn_layers::blob_store::BlobStore;
use cairn_layers::{write_layer, Entry, EntryKind, LayerOptions, Source};

fn blob(entries: &[Entry], threads: usize) -> (cairn_layers::Layer, Vec<u8>) {
    let t = tempfile::tempdir().unwrap();
    let store = BlobStore::open(t.path()).unwrap();
    let opts = LayerOptions {
        threads,
        ..LayerOptions::new(support::POLICY)
    };
    let layer = write_layer(entries.iter().cloned(), &opts, &store).unwrap();
    let bytes = store.read_bytes(&layer.digest).unwrap();
    (layer, bytes)
}

#[test]
fn identical_bytes_across_thread_counts_and_runs() {
    for entries in [support::small(), support::multiblock()] {
        let (first, first_bytes) = blob(&entries, 1);
        for threads in [1, 2, 3, 8, 0] {
            let (layer, bytes) = blob(&entries, threads);
            assert_eq!(layer, first, "threads={threads}");
            assert!(bytes == first_bytes, "threads={threads}: blob bytes differ");
        }
    }
}

#[test]
fn file_sources_and_memory_sources_give_the_same_layer() {
    let t = tempfile::tempdir().unwrap();
    let in_memory = support::multiblock();
    let from_disk: Vec<Entry> = in_memory
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File {
                size,
                source: Source::Bytes(b),
            } => {
                let p = t.path().join(e.path.replace('/', "_"));
                std::fs::write(&p, b).unwrap();
                Entry {
                    kind: EntryKind::File {
                        size: *size,
                        source: Source::Path(p),
                    },
                    ..e.clone()
                }
            }
            _ => e.clone(),
        })
        .collect();
    assert_eq!(blob(&in_memory, 2).0, blob(&from_disk, 2).0);
}
