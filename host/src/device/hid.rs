//! Real USB lights (every HID family) through hidapi's Linux hidraw backend (pure Rust: it reads /sys
//! itself, so it needs no libudev, cross-compiles and runs without a udev daemon).

use std::path::Path;
use std::sync::Mutex;

use hidapi::{HidApi, HidDevice};

use super::DeviceError;
use super::family::Family;
use super::transport::{Bus, DeviceInfo, Transport};

/// Where the udev rule links each stick's hidraw node (`/dev/blinkstick/hidrawN`).
const LINK_DIR: &str = "/dev/blinkstick";

/// Where a stick's node is in this filesystem: `/dev/hidrawN` on a host; in a
/// container that a device plugin handed only the udev rule's link, that link.
fn reachable_node(path: &str, link_dir: &Path) -> String {
    let node = Path::new(path);
    if node.exists() {
        return path.to_string();
    }
    match node.file_name().map(|name| link_dir.join(name)) {
        Some(linked) if linked.exists() => linked.to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

/// A device node under the udev rule's link directory — on a host, one link per
/// stick; in a container, what a device plugin handed it — and whether this process
/// can open it read-write, as podlight must.
#[derive(Debug)]
pub struct LinkedNode {
    pub path: std::path::PathBuf,
    pub access: Result<(), NodeAccessError>,
}

/// Why a linked node cannot be opened, with what the fix needs to know.
#[derive(Debug, thiserror::Error)]
pub enum NodeAccessError {
    #[error(
        "permission denied: the node is owned by {uid}:{gid} with mode {mode:04o}, and podlight \
         runs as uid {process_uid} with groups {process_groups}; give podlight the node's group \
         (in a pod: securityContext.supplementalGroups [{gid}], as deploy/overlays/device-plugin \
         does for Debian's plugdev)"
    )]
    PermissionDenied {
        uid: u32,
        gid: u32,
        mode: u32,
        process_uid: String,
        process_groups: String,
    },
    #[error("{source}")]
    Other {
        #[source]
        source: std::io::Error,
    },
}

/// Every node under [`LINK_DIR`], sorted, with its access.
pub fn linked_nodes() -> Vec<LinkedNode> {
    linked_nodes_in(Path::new(LINK_DIR))
}

fn linked_nodes_in(dir: &Path) -> Vec<LinkedNode> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let access = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map(drop)
                .map_err(|source| access_error(&path, source));
            LinkedNode { path, access }
        })
        .collect()
}

fn access_error(path: &Path, source: std::io::Error) -> NodeAccessError {
    use std::os::unix::fs::MetadataExt;
    if source.kind() != std::io::ErrorKind::PermissionDenied {
        return NodeAccessError::Other { source };
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return NodeAccessError::Other { source };
    };
    // From /proc rather than libc: this process's identity, as the kernel checks it.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let effective_uid = field("Uid:")
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string();
    let groups = format!(
        "{} + [{}]",
        field("Gid:").split_whitespace().nth(1).unwrap_or("?"),
        field("Groups:")
    );
    NodeAccessError::PermissionDenied {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
        process_uid: effective_uid,
        process_groups: groups,
    }
}

/// What tells a light apart: its serial number, or — for a light that has none, as
/// the Luxafor Flag — its device node, which stays its own while it is plugged in.
fn identity(serial: &str, path: &str) -> String {
    if serial.trim().is_empty() {
        path.to_string()
    } else {
        serial.to_string()
    }
}

/// The machine's USB HID bus.
pub struct HidBus {
    api: Mutex<HidApi>,
}

impl HidBus {
    pub fn new() -> Result<HidBus, DeviceError> {
        let api = HidApi::new().map_err(|e| DeviceError::hid("starting hidapi", e))?;
        Ok(HidBus {
            api: Mutex::new(api),
        })
    }

    fn api(&self) -> Result<std::sync::MutexGuard<'_, HidApi>, DeviceError> {
        self.api.lock().map_err(|_| DeviceError::Poisoned)
    }
}

impl Bus for HidBus {
    fn list(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        let mut api = self.api()?;
        api.reset_devices()
            .map_err(|e| DeviceError::hid("listing lights", e))?;
        for (vendor, product) in Family::ALL.into_iter().filter_map(Family::usb_ids) {
            api.add_devices(vendor, product)
                .map_err(|e| DeviceError::hid("listing lights", e))?;
        }
        let mut sticks: Vec<DeviceInfo> = api
            .device_list()
            // Match on vendor and product only: through uhid, bus type, interface and
            // manufacturer are not what a USB light reports.
            .filter_map(|d| {
                let family = Family::from_usb_ids(d.vendor_id(), d.product_id())?;
                let path = reachable_node(&d.path().to_string_lossy(), Path::new(LINK_DIR));
                Some(DeviceInfo {
                    family,
                    serial: identity(d.serial_number().unwrap_or_default(), &path),
                    release: d.release_number(),
                    manufacturer: d.manufacturer_string().unwrap_or_default().to_string(),
                    product: d.product_string().unwrap_or_default().to_string(),
                    path,
                    led_count: None,
                })
            })
            .collect();
        sticks.sort_by(|a, b| (a.family, &a.serial).cmp(&(b.family, &b.serial)));
        sticks.dedup_by(|a, b| a.path == b.path);
        Ok(sticks)
    }

    fn open(&self, serial: &str) -> Result<Box<dyn Transport>, DeviceError> {
        let info = self
            .list()?
            .into_iter()
            .find(|d| d.serial == serial)
            .ok_or(DeviceError::NotFound {
                serial: Some(serial.to_string()),
            })?;
        let api = self.api()?;
        // A path from /sys never holds a NUL; if one did, it names no device.
        let path =
            std::ffi::CString::new(info.path.clone()).map_err(|_| DeviceError::NotFound {
                serial: Some(info.serial.clone()),
            })?;
        let device = api.open_path(&path).map_err(|e| {
            let text = e.to_string();
            if text.contains("ermission") || text.contains("EACCES") {
                DeviceError::PermissionDenied {
                    path: info.path.clone(),
                }
            } else {
                DeviceError::hid(format!("opening {}", info.path), e)
            }
        })?;
        Ok(Box::new(HidTransport {
            device,
            serial: info.serial,
            path: info.path,
        }))
    }
}

struct HidTransport {
    device: HidDevice,
    serial: String,
    path: String,
}

impl HidTransport {
    /// A failed transfer on a stick that is gone means it was unplugged (its node may
    /// already belong to a stick plugged in since).
    fn error(&mut self, e: hidapi::HidError) -> DeviceError {
        if self.is_connected() {
            DeviceError::hid(format!("talking to {}", self.path), e)
        } else {
            DeviceError::Gone {
                serial: self.serial.clone(),
            }
        }
    }
}

impl Transport for HidTransport {
    fn set_feature(&mut self, report: &[u8]) -> Result<(), DeviceError> {
        let result = self.device.send_feature_report(report);
        result.map_err(|e| self.error(e))
    }

    fn write(&mut self, report: &[u8]) -> Result<(), DeviceError> {
        let result = self.device.write(report);
        result.map(drop).map_err(|e| self.error(e))
    }

    fn get_feature(&mut self, id: u8, size: usize) -> Result<Vec<u8>, DeviceError> {
        let mut buf = vec![0u8; size];
        buf[0] = id;
        let result = self.device.get_feature_report(&mut buf);
        let n = result.map_err(|e| self.error(e))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn is_connected(&mut self) -> bool {
        if !Path::new(&self.path).exists() {
            return false;
        }
        // hidraw polls as hung up once its device is gone. A zero-timeout read of a
        // present light returns at once, with nothing (BlinkStick, blink(1)) or an
        // input report that nobody needs (a Luxafor's button).
        let mut buf = [0u8; 64];
        self.device.read_timeout(&mut buf, 0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_nodes_say_whether_they_open_read_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let open = dir.path().join("hidraw1");
        let closed = dir.path().join("hidraw2");
        std::fs::write(&open, b"").expect("node");
        std::fs::write(&closed, b"").expect("node");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let nodes = linked_nodes_in(dir.path());
        assert_eq!(nodes.len(), 2);
        assert!(nodes[0].access.is_ok(), "{:?}", nodes[0]);
        // Root opens anything: the refusal shows only as another user.
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        });
        if !root {
            let error = nodes[1]
                .access
                .as_ref()
                .expect_err("read-only node")
                .to_string();
            assert!(
                error.contains("supplementalGroups") && error.contains("0400"),
                "{error}"
            );
        }
        assert!(linked_nodes_in(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_light_without_a_serial_is_known_by_its_node() {
        assert_eq!(identity("2000abcd", "/dev/hidraw1"), "2000abcd");
        assert_eq!(identity("", "/dev/hidraw4"), "/dev/hidraw4");
        assert_eq!(identity("  ", "/dev/hidraw4"), "/dev/hidraw4");
    }

    #[test]
    fn a_missing_node_is_found_under_the_udev_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let links = dir.path().join("blinkstick");
        std::fs::create_dir(&links).expect("mkdir");
        let host_node = dir.path().join("hidraw3");
        // On a host: the node itself.
        std::fs::write(&host_node, b"").expect("node");
        let host_path = host_node.to_string_lossy().into_owned();
        assert_eq!(reachable_node(&host_path, &links), host_path);
        // In a container: only the link the device plugin mounted.
        std::fs::remove_file(&host_node).expect("rm");
        std::fs::write(links.join("hidraw3"), b"").expect("link");
        assert_eq!(
            reachable_node(&host_path, &links),
            links.join("hidraw3").to_string_lossy()
        );
        // Neither: the original path, so the error names it.
        assert_eq!(reachable_node("/dev/hidraw99", &links), "/dev/hidraw99");
    }
}
