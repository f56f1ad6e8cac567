//! The agent's resident memory: most of it was its own code, mapped from the binary
//! (15 of 21 MiB, its heap under 3). Linux reads a binary ahead and maps it in large
//! folios, so a 45 MB binary whose running code is spread thin had most of its code
//! resident, much of it code that ran once at start (flags, TLS, the first list, the
//! policy's load) or never. So the agent advises random access on its own code (no
//! read-ahead from then on) and, once started, lets the kernel take back the pages it
//! has (clean file pages: nothing is written, nothing is lost); what it runs from
//! then on comes back page by page, at one minor fault each.

/// Advises random access on every mapping of this process's executable (Linux; a
/// no-op elsewhere or if /proc is not readable — it only saves memory).
pub fn map_own_code_on_demand() {
    #[cfg(target_os = "linux")]
    advise_own(|_| true, libc::MADV_RANDOM);
}

/// Gives the kernel back the pages of this process's code and read-only data it
/// holds now (Linux: `MADV_PAGEOUT` on the executable's read-only mappings); call it
/// once start-up is over. Only saves memory; a no-op where it cannot.
pub fn release_startup_code() {
    #[cfg(target_os = "linux")]
    advise_own(read_only, libc::MADV_PAGEOUT);
}

/// `advice` on the mappings of this process's executable whose permissions
/// (`r-xp`…) are `wanted`.
#[cfg(target_os = "linux")]
fn advise_own(wanted: fn(&str) -> bool, advice: libc::c_int) {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in mappings_of(&maps, &exe.to_string_lossy(), wanted) {
        // SAFETY: MADV_RANDOM only changes how the kernel reads this process's file
        // mappings in; MADV_PAGEOUT on read-only private file mappings only drops
        // clean pages the kernel reads again from the file on the next access.
        // Neither changes what the memory holds.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, advice);
        }
    }
}

/// Mappings that cannot be written (code, constants).
fn read_only(perms: &str) -> bool {
    !perms.contains('w')
}

/// The address ranges of the `/proc/self/maps` lines that map `exe` with wanted
/// permissions.
fn mappings_of(maps: &str, exe: &str, wanted: fn(&str) -> bool) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if path != exe || !wanted(perms) {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{mappings_of, read_only};

    #[test]
    fn finds_only_the_executables_mappings() {
        let maps = "\
55d0c0000000-55d0c1000000 r--p 00000000 fd:01 42  /usr/bin/podlight
55d0c1000000-55d0c3000000 r-xp 01000000 fd:01 42  /usr/bin/podlight
55d0c3000000-55d0c3100000 rw-p 03000000 fd:01 42  /usr/bin/podlight
7f0000000000-7f0000100000 r-xp 00000000 fd:01 7   /usr/lib/libc.so.6
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
garbage line
";
        assert_eq!(
            mappings_of(maps, "/usr/bin/podlight", read_only),
            [
                (0x55d0_c000_0000, 0x55d0_c100_0000),
                (0x55d0_c100_0000, 0x55d0_c300_0000)
            ]
        );
        assert_eq!(mappings_of(maps, "/usr/bin/podlight", |_| true).len(), 3);
    }

    /// This process's resident pages mapped from files, in kB.
    #[cfg(target_os = "linux")]
    fn resident_file_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("RssFile:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_code_leaves_the_resident_set() {
        super::map_own_code_on_demand();
        let before = resident_file_kb();
        super::release_startup_code();
        let after = resident_file_kb();
        assert!(
            after + 1024 < before,
            "resident file pages {before} kB before, {after} kB after"
        );
    }
}
