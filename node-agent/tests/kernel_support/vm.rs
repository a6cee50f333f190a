//! Runs one test of the current test binary inside a small qemu VM with a stock Debian kernel
//! (which has IP-in-IP), the way DESIGN.md describes. The qemu and kernel packages are the cache
//! `e2e/vm/run-ipip.sh` fills with `apt-get download` (never installed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set inside the VM, so the test knows where it runs.
pub const IN_VM: &str = "GINGHAM_IN_VM";

fn cache() -> PathBuf {
    std::env::var_os("GINGHAM_VM_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/gingham-vm")
    })
}

fn find(dir: &Path, predicate: &dyn Fn(&str) -> bool) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, predicate) {
                return Some(found);
            }
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(predicate) {
            return Some(path);
        }
    }
    None
}

fn copy_with_libs(binary: &Path, tree: &Path, dir: &str) -> Result<(), String> {
    let target = tree.join(dir.trim_start_matches('/'));
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let name = binary.file_name().ok_or("binary without a name")?;
    std::fs::copy(binary, target.join(name)).map_err(|e| format!("copy {}: {e}", binary.display()))?;
    let ldd = Command::new("ldd").arg(binary).output().map_err(|e| format!("ldd: {e}"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let library = match words.as_slice() {
            [_, "=>", path, ..] => *path,
            [path, ..] if path.contains("ld-linux") => *path,
            _ => continue,
        };
        let destination = tree.join(library.trim_start_matches('/'));
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(library, &destination).map_err(|e| format!("copy {library}: {e}"))?;
    }
    Ok(())
}

/// Boots the VM running `test` from this binary; returns the console output, or why the VM
/// could not be prepared.
pub fn run_test_in_vm(test: &str) -> Result<String, String> {
    let cache = cache();
    if !cache.join(".complete").exists() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/vm/run-ipip.sh");
        let _ = Command::new("bash").arg(script).output();
    }
    let root = cache.join("root");
    let qemu = root.join("usr/bin/qemu-system-x86_64");
    if !qemu.exists() {
        return Err(format!("no qemu in {} (e2e/vm/run-ipip.sh fetches it with apt-get download)", cache.display()));
    }
    let kernel = find(&root.join("boot"), &|n| n.starts_with("vmlinuz-")).ok_or("no kernel in the VM cache")?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tree = work.path().join("tree");
    for dir in ["bin", "proc", "sys", "dev", "run", "tmp", "mods", "tests"] {
        std::fs::create_dir_all(tree.join(dir)).map_err(|e| e.to_string())?;
    }
    std::fs::copy("/usr/bin/busybox", tree.join("bin/busybox")).map_err(|e| format!("busybox-static: {e}"))?;
    copy_with_libs(Path::new("/usr/sbin/ip"), &tree, "/usr/sbin")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    copy_with_libs(&exe, &tree, "/tests")?;
    let modules = ["tunnel4", "ip_tunnel", "ipip", "veth"];
    for module in modules {
        let prefix = format!("{module}.ko");
        let path = find(&root.join("lib/modules"), &|n| n.starts_with(&prefix)).ok_or(format!("no {module} module"))?;
        std::fs::copy(&path, tree.join("mods").join(path.file_name().ok_or("module name")?))
            .map_err(|e| e.to_string())?;
    }
    let exe_name = exe.file_name().and_then(|n| n.to_str()).ok_or("test binary name")?;
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/usr/sbin:/bin {IN_VM}=1\n\
         mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run\n\
         for m in {}; do insmod /mods/$m.ko* || echo \"insmod $m failed\"; done\n\
         if /tests/{exe_name} --exact {test} --include-ignored --nocapture --test-threads=1; then echo GINGHAM-VM PASS; else echo GINGHAM-VM FAIL; fi\n\
         poweroff -f\n",
        modules.join(" ")
    );
    std::fs::write(tree.join("init"), init).map_err(|e| e.to_string())?;
    let pack = "chmod +x init && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > ../initramfs.gz";
    let packed = Command::new("sh").args(["-c", pack]).current_dir(&tree).status().map_err(|e| e.to_string())?;
    if !packed.success() {
        return Err("cannot pack the initramfs".into());
    }
    let libs = format!("{0}/usr/lib/x86_64-linux-gnu:{0}/lib/x86_64-linux-gnu", root.display());
    let output = Command::new("timeout")
        .arg("300")
        .arg(&qemu)
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-nographic", "-no-reboot", "-net", "none"])
        .arg("-L")
        .arg(root.join("usr/share/qemu"))
        .arg("-L")
        .arg(root.join("usr/share/seabios"))
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(work.path().join("initramfs.gz"))
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .env("LD_LIBRARY_PATH", libs)
        .env("QEMU_MODULE_DIR", root.join("usr/lib/x86_64-linux-gnu/qemu"))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start qemu: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).replace('\r', ""))
}
