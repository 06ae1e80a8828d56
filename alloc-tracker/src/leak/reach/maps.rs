//! What the scan reads: the process's writable private mappings (from
//! `/proc/self/maps`) and its threads' stack pointers (from
//! `/proc/self/task/<tid>/syscall`, known for threads blocked in a system
//! call).

/// One mapping the scan may read.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The mapped file, `[heap]`, `[stack]`, `[anon:..]`, or empty.
    pub(crate) name: String,
}

impl Region {
    pub(crate) fn contains(&self, a: usize) -> bool {
        self.start <= a && a < self.end
    }
}

/// The readable, writable, private mappings of this process, in address
/// order, without the kernel's `[vvar]`/`[vsyscall]` pages.
#[cfg(test)]
pub(crate) fn writable_regions() -> std::io::Result<Vec<Region>> {
    Ok(parse_writable(&std::fs::read_to_string("/proc/self/maps")?))
}

/// Reads `/proc/self/maps` into `buf` without growing it (so without
/// allocating, and without making the allocator map memory while the text
/// is made); the text's length, or `None` when it did not fit.
pub(crate) fn read_maps_into(buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    use std::io::Read;
    let mut f = std::fs::File::open("/proc/self/maps")?;
    let mut n = 0;
    if buf.is_empty() {
        return Ok(None);
    }
    loop {
        match f.read(&mut buf[n..]) {
            Ok(0) => return Ok(Some(n)),
            // A full buffer cannot tell the end of the text from a cut.
            Ok(k) if n + k == buf.len() => return Ok(None),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether some byte of `now` lies in none of `before` (both in address
/// order, as [`parse_writable`] gives them): memory mapped, or made
/// writable, since `before` was read. `skip(a)` may say that the memory
/// from `a` up to the address it returns does not count.
pub(crate) fn grown(
    before: &[Region],
    now: &[Region],
    skip: impl Fn(usize) -> Option<usize>,
) -> bool {
    now.iter().any(|r| {
        let mut at = r.start;
        while at < r.end {
            let i = before.partition_point(|b| b.end <= at);
            match (before.get(i), skip(at)) {
                (Some(b), _) if b.start <= at => at = b.end,
                (_, Some(end)) if end > at => at = end,
                _ => return true,
            }
        }
        false
    })
}

/// The readable, writable, private mappings listed in `text` (the
/// contents of `/proc/self/maps`), in address order, without the kernel's
/// `[vvar]`/`[vsyscall]` pages.
pub(crate) fn parse_writable(text: &str) -> Vec<Region> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let name = f.nth(3).unwrap_or("").to_string();
        let p = perms.as_bytes();
        if p.len() < 4 || p[0] != b'r' || p[1] != b'w' || p[3] != b'p' {
            continue;
        }
        if name.starts_with("[vvar") || name == "[vsyscall]" || name == "[vdso]" {
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16))
        else {
            continue;
        };
        out.push(Region { start, end, name });
    }
    out
}

/// Another thread of this process.
#[derive(Debug, Clone)]
pub(crate) struct ThreadInfo {
    pub(crate) tid: i32,
    /// Its name (`comm`).
    pub(crate) name: String,
    /// Its stack pointer, when it is blocked in a system call.
    pub(crate) sp: Option<usize>,
}

/// This process's threads other than `me`.
pub(crate) fn other_threads(me: i32) -> Vec<ThreadInfo> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if tid == me {
            continue;
        }
        let base = e.path();
        let name = std::fs::read_to_string(base.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let sp = std::fs::read_to_string(base.join("syscall"))
            .ok()
            .and_then(|s| syscall_sp(&s));
        out.push(ThreadInfo { tid, name, sp });
    }
    out
}

/// The thread ids of this process other than `me` (no more than that);
/// `None` when `/proc/self/task` cannot be read.
pub(crate) fn other_thread_ids(me: i32) -> Option<Vec<i32>> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&tid| tid != me)
            .collect(),
    )
}

/// The stack pointer in a `/proc/<pid>/task/<tid>/syscall` line: `nr a1 ..
/// a6 sp pc` while blocked in a call, `-1 sp pc` while blocked otherwise,
/// `running` while running.
fn syscall_sp(s: &str) -> Option<usize> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() < 3 || f[0] == "running" {
        return None;
    }
    let sp = f[f.len() - 2].trim_start_matches("0x");
    usize::from_str_radix(sp, 16).ok().filter(|&v| v != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn syscall_line_gives_the_stack_pointer_of_a_blocked_thread() {
        let l = "202 0x7f00 0x80 0x2 0x0 0x0 0x0 0x7ffd1234 0x7f5555\n";
        assert_eq!(super::syscall_sp(l), Some(0x7ffd_1234));
        assert_eq!(super::syscall_sp("-1 0x7ffd10 0x4000\n"), Some(0x7ffd10));
        assert_eq!(super::syscall_sp("running\n"), None);
    }

    #[test]
    fn memory_mapped_since_is_told_from_memory_unmapped_since() {
        let r = |start, end| super::Region {
            start,
            end,
            name: String::new(),
        };
        let before = [r(0x1000, 0x3000), r(0x5000, 0x6000)];
        let grown = |now: &[super::Region]| super::grown(&before, now, |_| None);
        assert!(!grown(&before));
        // Unmapped, split or merged within what was there: nothing new.
        assert!(!grown(&[r(0x2000, 0x3000)]));
        assert!(!grown(&[r(0x1000, 0x2000), r(0x2000, 0x3000)]));
        // Mapped anew, grown at either end, or joined across a gap: new.
        assert!(grown(&[r(0x8000, 0x9000)]));
        assert!(grown(&[r(0x0, 0x3000)]));
        assert!(grown(&[r(0x5000, 0x7000)]));
        assert!(grown(&[r(0x1000, 0x6000)]));
        // Unless what is new is memory that does not count.
        let skip = |a: usize| (0x8000..0xa000).contains(&a).then_some(0xa000);
        assert!(!super::grown(&before, &[r(0x8000, 0x9000)], skip));
        assert!(super::grown(&before, &[r(0x8000, 0xb000)], skip));
    }

    #[test]
    fn maps_read_into_a_buffer_list_this_static_and_refuse_a_cut() {
        static DATA: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let a = std::ptr::addr_of!(DATA) as usize;
        let mut buf = vec![0u8; 1 << 20];
        let n = super::read_maps_into(&mut buf)
            .unwrap()
            .expect("fits in 1 MiB");
        let regions = super::parse_writable(std::str::from_utf8(&buf[..n]).unwrap());
        assert!(regions.iter().any(|r| r.contains(a)));
        assert_eq!(super::read_maps_into(&mut buf[..16]).unwrap(), None);
        assert_eq!(super::read_maps_into(&mut []).unwrap(), None);
    }

    #[test]
    fn maps_list_the_writable_private_mappings() {
        static DATA: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let a = std::ptr::addr_of!(DATA) as usize;
        let regions = super::writable_regions().unwrap();
        assert!(regions.iter().any(|r| r.contains(a)));
        assert!(regions.windows(2).all(|w| w[0].end <= w[1].start));
    }
}
