//! The pprof heap profile (feature `pprof`) read back by decoders that do
//! not share our code:
//!
//! - rust-protobuf (not prost) with a `.proto` definition written here, in
//!   the test, parsed at run time by its pure-Rust parser and used to
//!   decode the profile as dynamic messages: sample values per `scope`
//!   label must add up to the report's sites per scope, for the sampled
//!   estimates and the recorded leak sites separately, and the functions of
//!   the allocating code must be named;
//! - Go's own `go tool pprof -top` (Debian's `golang-go`), when `go` is on
//!   the PATH; otherwise that test prints why it is skipped.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use protobuf::reflect::{FileDescriptor, MessageDescriptor, ReflectValueRef};
use protobuf::MessageDyn;
use scope_alloc_tracker::leak::{LeakCheck, Sites};
use scope_alloc_tracker::report::{dump, Format, Report, SiteSource};
use scope_alloc_tracker::sampling::{set_sampling, Sampling};
use scope_alloc_tracker::Scope;

static CACHE: Scope = Scope::new("pprof-cache");
static INDEX: Scope = Scope::child_of(&CACHE, "index");
static LEAKY: Scope = Scope::new("pprof-leaky");

/// The `perftools.profiles` messages, written for this test from the
/// format's documentation (field numbers and types as upstream), not
/// shared with the crate's `prost` structs.
const PROFILE_PROTO: &str = r#"
syntax = "proto3";
package perftools.profiles;
message Profile {
  repeated ValueType sample_type = 1;
  repeated Sample sample = 2;
  repeated Mapping mapping = 3;
  repeated Location location = 4;
  repeated Function function = 5;
  repeated string string_table = 6;
  int64 drop_frames = 7;
  int64 keep_frames = 8;
  int64 time_nanos = 9;
  int64 duration_nanos = 10;
  ValueType period_type = 11;
  int64 period = 12;
  repeated int64 comment = 13;
  int64 default_sample_type = 14;
}
message ValueType { int64 type = 1; int64 unit = 2; }
message Sample {
  repeated uint64 location_id = 1;
  repeated int64 value = 2;
  repeated Label label = 3;
}
message Label { int64 key = 1; int64 str = 2; int64 num = 3; int64 num_unit = 4; }
message Mapping {
  uint64 id = 1; uint64 memory_start = 2; uint64 memory_limit = 3; uint64 file_offset = 4;
  int64 filename = 5; int64 build_id = 6;
  bool has_functions = 7; bool has_filenames = 8; bool has_line_numbers = 9; bool has_inline_frames = 10;
}
message Location {
  uint64 id = 1; uint64 mapping_id = 2; uint64 address = 3; repeated Line line = 4; bool is_folded = 5;
}
message Line { uint64 function_id = 1; int64 line = 2; }
message Function { uint64 id = 1; int64 name = 2; int64 system_name = 3; int64 filename = 4; int64 start_line = 5; }
"#;

#[inline(never)]
fn fill_pprof_cache(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; 512 + i % 1024]).collect()
}

#[inline(never)]
fn build_pprof_index(n: usize) -> Vec<Box<[u64]>> {
    (0..n)
        .map(|i| vec![i as u64; 64].into_boxed_slice())
        .collect()
}

#[inline(never)]
fn leak_for_pprof() {
    black_box(Box::leak(vec![7u8; 5000].into_boxed_slice()));
}

/// What [`real_report`] keeps alive until the test ends.
type Kept = (Vec<Vec<u8>>, Vec<Box<[u64]>>);

/// One decoded sample: values, labels (key → value), function names leaf
/// first.
type DecodedSample = (Vec<i64>, HashMap<String, String>, Vec<String>);

/// A real report: sampled sites in two scopes (and the rest of the
/// process), plus the recorded sites of a leak check.
fn real_report() -> (Report, Kept) {
    set_sampling(Sampling::Bytes {
        every_bytes: 16 * 1024,
    });
    // Fresh threads start their countdown with the new interval.
    let cache = std::thread::spawn(|| CACHE.in_scope(|| fill_pprof_cache(4000)))
        .join()
        .unwrap();
    let index = std::thread::spawn(|| INDEX.in_scope(|| build_pprof_index(4000)))
        .join()
        .unwrap();
    let check = LeakCheck::options(LEAKY.id()).sites(Sites::Record).begin();
    LEAKY.in_scope(leak_for_pprof);
    let leak = check.finish().expect_err("the planted leak is found");
    let report = Report::take().with_leak(&leak);
    set_sampling(Sampling::Off);
    (report, (cache, index))
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    assert_eq!(gz[..2], [0x1f, 0x8b], "gzip magic");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pprof-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `Profile` descriptor from [`PROFILE_PROTO`], by rust-protobuf.
fn profile_descriptor() -> MessageDescriptor {
    let dir = temp_dir("proto");
    let file = dir.join("profile.proto");
    std::fs::write(&file, PROFILE_PROTO).unwrap();
    let parsed = protobuf_parse::Parser::new()
        .pure()
        .include(&dir)
        .input(&file)
        .parse_and_typecheck()
        .expect("the test's .proto parses");
    let files = FileDescriptor::new_dynamic_fds(parsed.file_descriptors, &[]).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    files[0]
        .message_by_package_relative_name("Profile")
        .expect("Profile message")
}

/// A decoded profile, flattened into plain Rust data.
#[derive(Debug, Default)]
struct Decoded {
    strings: Vec<String>,
    sample_types: Vec<(String, String)>,
    default_sample_type: String,
    samples: Vec<DecodedSample>,
    /// function id → (name, file)
    functions: HashMap<u64, (String, String)>,
    /// location id → (function id, line)
    locations: HashMap<u64, Vec<(u64, i64)>>,
}

fn field<'a>(m: &'a dyn MessageDyn, name: &str) -> ReflectValueRef<'a> {
    let d = m.descriptor_dyn();
    d.field_by_name(name)
        .unwrap_or_else(|| panic!("field {name}"))
        .get_singular_field_or_default(m)
}

fn int(v: ReflectValueRef<'_>) -> i64 {
    match v {
        ReflectValueRef::I64(x) => x,
        ReflectValueRef::U64(x) => x as i64,
        other => panic!("not an integer: {other:?}"),
    }
}

fn repeated<'a>(m: &'a dyn MessageDyn, name: &str) -> Vec<ReflectValueRef<'a>> {
    let d = m.descriptor_dyn();
    let r = d
        .field_by_name(name)
        .unwrap_or_else(|| panic!("field {name}"))
        .get_repeated(m);
    (0..r.len()).map(|i| r.get(i)).collect()
}

fn decode(proto: &[u8]) -> Decoded {
    let desc = profile_descriptor();
    let msg = desc.parse_from_bytes(proto).expect("the profile decodes");
    let m: &dyn MessageDyn = &*msg;
    let mut d = Decoded {
        strings: repeated(m, "string_table")
            .into_iter()
            .map(|v| match v {
                ReflectValueRef::String(s) => s.to_string(),
                other => panic!("{other:?}"),
            })
            .collect(),
        ..Decoded::default()
    };
    let s = |i: i64| d.strings[usize::try_from(i).unwrap()].clone();
    for v in repeated(m, "sample_type") {
        let ReflectValueRef::Message(vt) = v else {
            panic!()
        };
        d.sample_types
            .push((s(int(field(&*vt, "type"))), s(int(field(&*vt, "unit")))));
    }
    d.default_sample_type = s(int(field(m, "default_sample_type")));
    for v in repeated(m, "function") {
        let ReflectValueRef::Message(f) = v else {
            panic!()
        };
        d.functions.insert(
            int(field(&*f, "id")) as u64,
            (s(int(field(&*f, "name"))), s(int(field(&*f, "filename")))),
        );
    }
    for v in repeated(m, "location") {
        let ReflectValueRef::Message(l) = v else {
            panic!()
        };
        let lines = repeated(&*l, "line")
            .into_iter()
            .map(|v| {
                let ReflectValueRef::Message(line) = v else {
                    panic!()
                };
                (
                    int(field(&*line, "function_id")) as u64,
                    int(field(&*line, "line")),
                )
            })
            .collect();
        d.locations.insert(int(field(&*l, "id")) as u64, lines);
    }
    let mut samples = Vec::new();
    for v in repeated(m, "sample") {
        let ReflectValueRef::Message(smp) = v else {
            panic!()
        };
        let values = repeated(&*smp, "value").into_iter().map(int).collect();
        let labels = repeated(&*smp, "label")
            .into_iter()
            .map(|v| {
                let ReflectValueRef::Message(l) = v else {
                    panic!()
                };
                (s(int(field(&*l, "key"))), s(int(field(&*l, "str"))))
            })
            .collect();
        let functions = repeated(&*smp, "location_id")
            .into_iter()
            .flat_map(|id| {
                let lines = d
                    .locations
                    .get(&(int(id) as u64))
                    .expect("every location_id names a location");
                lines
                    .iter()
                    .map(|(f, _)| d.functions.get(f).expect("known function").0.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        samples.push((values, labels, functions));
    }
    d.samples = samples;
    d
}

/// Sums of (bytes, allocs) per (scope, source) in the report.
fn report_sums(report: &Report) -> HashMap<(String, &'static str), (i64, i64)> {
    let mut out: HashMap<(String, &'static str), (i64, i64)> = HashMap::new();
    for s in &report.sites {
        let source = match s.source {
            SiteSource::Sampled => "sampled",
            SiteSource::Recorded => "recorded",
        };
        let e = out.entry((s.scope.clone(), source)).or_default();
        e.0 += s.bytes as i64;
        e.1 += s.allocs as i64;
    }
    out.retain(|_, v| *v != (0, 0));
    out
}

#[test]
fn profile_matches_the_report_per_scope_and_names_functions() {
    let _alone = crate::common::alone();
    assert!(Format::Pprof.is_available(), "feature `pprof` is on");
    let (report, kept) = real_report();
    let gz = report.to_pprof().unwrap();
    let d = decode(&gunzip(&gz));

    assert_eq!(d.strings[0], "", "string_table[0] must be empty");
    assert_eq!(
        d.sample_types,
        vec![
            ("inuse_space".to_string(), "bytes".to_string()),
            ("inuse_objects".to_string(), "count".to_string())
        ]
    );
    assert_eq!(d.default_sample_type, "inuse_space");

    // Values per (scope label, source label) = the report's sites.
    let mut decoded: HashMap<(String, &'static str), (i64, i64)> = HashMap::new();
    for (values, labels, _) in &d.samples {
        assert_eq!(values.len(), 2);
        let source = match labels["source"].as_str() {
            "sampled" => "sampled",
            "recorded" => "recorded",
            other => panic!("source label {other:?}"),
        };
        let e = decoded
            .entry((labels["scope"].clone(), source))
            .or_default();
        e.0 += values[0];
        e.1 += values[1];
    }
    let expected = report_sums(&report);
    assert_eq!(decoded, expected);
    // The scopes of this test are there, with plausible sampled estimates
    // (the exact figure is the report's, checked above).
    let cache_bytes: u64 = kept.0.iter().map(|v| v.capacity() as u64).sum();
    let est = expected[&("pprof-cache".to_string(), "sampled")].0 as f64;
    assert!(
        (est - cache_bytes as f64).abs() < 0.35 * cache_bytes as f64,
        "estimate {est} vs {cache_bytes}"
    );
    assert!(expected.contains_key(&("pprof-cache/index".to_string(), "sampled")));
    assert_eq!(
        expected[&("pprof-leaky".to_string(), "recorded")],
        (5000, 1),
        "the leak's exact bytes and allocations"
    );

    // The allocating functions are named, in the stacks of their scope,
    // with a file and line.
    let named = |scope: &str, function: &str| {
        d.samples
            .iter()
            .any(|(_, l, f)| l["scope"] == scope && f.iter().any(|n| n.contains(function)))
    };
    assert!(named("pprof-cache", "fill_pprof_cache"));
    assert!(named("pprof-cache/index", "build_pprof_index"));
    assert!(named("pprof-leaky", "leak_for_pprof"));
    let (fid, (_, file)) = d
        .functions
        .iter()
        .find(|(_, (n, _))| n.contains("leak_for_pprof"))
        .unwrap();
    assert!(file.ends_with(".rs"), "file of leak_for_pprof: {file:?}");
    assert!(
        d.locations
            .values()
            .flatten()
            .any(|(f, line)| f == fid && *line > 0),
        "a line number for leak_for_pprof"
    );
    drop(black_box(kept));
}

#[test]
fn dump_writes_pb_gz_by_extension() {
    let _alone = crate::common::alone();
    let dir = temp_dir("dump");
    let path = dir.join("heap.pb.gz");
    assert_eq!(Format::from_path(&path), Some(Format::Pprof));
    assert_eq!(
        Format::from_path(Path::new("HEAP.PB.GZ")),
        Some(Format::Pprof)
    );
    assert_eq!("pprof".parse::<Format>().unwrap(), Format::Pprof);
    assert_eq!(Format::Pprof.extension(), "pb.gz");
    dump(&path, Format::Pprof).unwrap();
    let d = decode(&gunzip(&std::fs::read(&path).unwrap()));
    assert_eq!(d.sample_types.len(), 2);
    // An empty report is a valid, empty profile.
    let empty = decode(&gunzip(&Report::default().to_pprof().unwrap()));
    assert!(empty.samples.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

/// Go's pprof reads the file: `-top` lists our functions, `-tags` our
/// scopes, and the total is the report's.
#[test]
fn go_tool_pprof_reads_the_profile() {
    let _alone = crate::common::alone();
    let go = Command::new("go").arg("version").output();
    if !go.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED go_tool_pprof_reads_the_profile: `go` is not on the PATH (apt-get install golang-go)"
        );
        return;
    }
    let (report, kept) = real_report();
    let dir = temp_dir("go");
    let path = dir.join("heap.pb.gz");
    report.write_to_file(&path, Format::Pprof).unwrap();
    let pprof = |args: &[&str]| {
        let out = Command::new("go")
            .args(["tool", "pprof"])
            .args(args)
            .arg(&path)
            .env("HOME", &dir)
            .env("PPROF_TMPDIR", &dir)
            .env("PPROF_BINARY_PATH", &dir)
            .output()
            .expect("go tool pprof runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "go tool pprof {args:?}: {stdout}\n{stderr}"
        );
        stdout
    };
    let top = pprof(&["-top", "-nodecount=1000", "-nodefraction=0", "-unit=B"]);
    assert!(top.contains("Type: inuse_space"), "{top}");
    for f in ["fill_pprof_cache", "build_pprof_index", "leak_for_pprof"] {
        assert!(top.contains(f), "{f} missing:\n{top}");
    }
    // "Showing nodes accounting for X B, 100% of X B total"
    let total: i64 = report.sites.iter().map(|s| s.bytes as i64).sum();
    assert!(
        top.contains(&format!("of {total}B total")),
        "total {total}:\n{top}"
    );
    let tags = pprof(&["-tags"]);
    for needle in [
        "scope",
        "pprof-cache/index",
        "pprof-leaky",
        "source",
        "recorded",
    ] {
        assert!(tags.contains(needle), "{needle} missing:\n{tags}");
    }
    // Filtering on one scope's label gives that scope's sites only.
    let leaky = pprof(&[
        "-top",
        "-nodefraction=0",
        "-unit=B",
        "-tagfocus=scope=pprof-leaky",
    ]);
    assert!(leaky.contains("leak_for_pprof"), "{leaky}");
    assert!(!leaky.contains("fill_pprof_cache"), "{leaky}");
    println!("{top}");
    std::fs::remove_dir_all(&dir).ok();
    drop(black_box(kept));
}
