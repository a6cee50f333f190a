//! The sample manifests under `config/samples/` are valid, as `gingham-operator validate` judges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use gingham_crds::manifest::read_documents;
use gingham_crds::offline::validate_document;

#[test]
fn every_sample_manifest_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        for document in read_documents(&std::fs::read_to_string(&path).unwrap()).unwrap() {
            validate_document(&document).unwrap_or_else(|problems| panic!("{}: {problems:?}", path.display()));
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "a pool, a BGPConfiguration and a FelixConfiguration");
}
