//! The checked-in CRD YAML under `config/crd/` must be exactly what the types generate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use gingham_crds::crdgen::{all_crds, render_crd, render_kustomization};

#[test]
fn checked_in_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crd");
    let fix = "regenerate them with `cargo run -p gingham-crds --bin crdgen` and commit the result";
    for (file, crd) in all_crds() {
        let path = dir.join(&file);
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is missing ({e}): {fix}", path.display()));
        assert!(on_disk == render_crd(&crd).unwrap(), "{} differs from what the types generate: {fix}", path.display());
    }
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    assert_eq!(kustomization, render_kustomization(), "config/crd/kustomization.yaml is stale: {fix}");
}

#[test]
fn every_kind_follows_kubectl_conventions() {
    for (_, crd) in all_crds() {
        let names = &crd.spec.names;
        assert_eq!(names.categories.as_deref(), Some(&["gingham".to_string()][..]), "{} category", names.kind);
        assert!(names.short_names.as_ref().is_some_and(|s| !s.is_empty()), "{} short names", names.kind);
        let version = &crd.spec.versions[0];
        let columns: Vec<&str> =
            version.additional_printer_columns.iter().flatten().map(|column| column.name.as_str()).collect();
        assert!(columns.contains(&"AGE"), "{} has an AGE column", names.kind);
        let has_status = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| s.properties.as_ref())
            .is_some_and(|p| p.contains_key("status"));
        assert_eq!(
            has_status,
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} status subresource",
            names.kind
        );
    }
    let ippool = all_crds().into_iter().find(|(_, crd)| crd.spec.names.kind == "IPPool").unwrap().1;
    let columns: Vec<String> =
        ippool.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.clone()).collect();
    assert_eq!(columns, ["CIDR", "BLOCKSIZE", "IPIP", "VXLAN", "NATOUTGOING", "DISABLED", "AGE"]);
}
