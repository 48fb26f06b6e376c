//! The module structure `src/lib.rs` declares is the one the code has: every module sits on
//! the floor lib.rs lists it under, imports only from its own floor or below, and no modules
//! import each other in a loop. A `use` that breaks this fails here, before review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// lib.rs' floors, top first: each a `// Name.` line followed by its `pub mod` lines.
fn floors(lib: &str) -> Vec<(String, Vec<String>)> {
    let mut floors: Vec<(String, Vec<String>)> = Vec::new();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("// ").and_then(|l| l.strip_suffix('.')) {
            floors.push((name.to_string(), Vec::new()));
        } else if let Some(module) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            let floor = floors
                .last_mut()
                .expect("a `// Floor.` line before each module");
            floor.1.push(module.to_string());
        }
    }
    floors
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate's top-level modules a file's code (not its comments) names as `crate::x`.
fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// Which module imports which, from the source tree.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let mut used = crate_imports(&text);
        used.remove(&module);
        graph.entry(module).or_default().extend(used);
    }
    graph
}

#[test]
fn every_module_imports_only_its_floor_or_below_and_none_in_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let floors = floors(&lib);
    assert!(
        floors.len() >= 4,
        "lib.rs lists its modules by floor: {floors:?}"
    );
    let height: BTreeMap<&str, usize> = floors
        .iter()
        .rev()
        .enumerate()
        .flat_map(|(height, (_, modules))| modules.iter().map(move |m| (m.as_str(), height)))
        .collect();
    let graph = imports(&src);

    let listed: BTreeSet<&str> = height.keys().copied().collect();
    let present: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    assert_eq!(
        listed, present,
        "lib.rs' floors list exactly the modules under src/"
    );

    let mut upward = Vec::new();
    for (module, used) in &graph {
        for target in used {
            let (from, to) = (height[module.as_str()], height[target.as_str()]);
            if to > from {
                upward.push(format!(
                    "{module} (floor {from}) imports {target} (floor {to})"
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports running up a floor:\n{}",
        upward.join("\n")
    );

    // Depth-first search for a loop among modules (same floor ones included).
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(start) = path.iter().position(|m| *m == module) {
            panic!("import loop: {} -> {module}", path[start..].join(" -> "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}
