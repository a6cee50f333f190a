//! Writes every gingham CRD to `config/crd/` (or the directory given as the first argument).

use std::path::PathBuf;
use std::process::ExitCode;

use gingham_crds::crdgen::{all_crds, render_crd, render_kustomization};

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/crd"), PathBuf::from);
    match write_all(&dir) {
        Ok(count) => {
            println!("wrote {count} CRDs to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("crdgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &std::path::Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let crds = all_crds();
    for (file, crd) in &crds {
        let text = render_crd(crd).map_err(|e| format!("cannot render {file}: {e}"))?;
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let path = dir.join("kustomization.yaml");
    std::fs::write(&path, render_kustomization()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(crds.len())
}
