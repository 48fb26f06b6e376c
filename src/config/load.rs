//! Reading a config file into [`FileConfig`], collecting every problem rather than stopping at
//! the first: the document is parsed once (syntax errors are recovered from), then each
//! top-level section, each `[[listener]]`/`[[route]]` entry and each `[pool.NAME]` table is
//! deserialized on its own, so one typo does not hide the next.

use super::file::{
    AdminConfig, AdmissionConfig, Limits, ListenerFile, LogConfig, PoolFile, RouteFile, Timeouts,
};
use super::security::SecurityFile;
use super::{ConfigError, Problem};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// The whole file, deserialized but not yet cross-checked.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub admission: AdmissionConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub log: LogConfig,
    pub security: SecurityFile,
    pub admin: AdminConfig,
    pub listeners: Vec<ListenerFile>,
    pub routes: Vec<RouteFile>,
    /// Pools by name, with the span of the name for error messages.
    pub pools: BTreeMap<String, (Range<usize>, PoolFile)>,
    /// Top-level `watch`: reload when the file changes on disk.
    pub watch: bool,
    /// Span of the `[[listener]]` array, or None when absent.
    pub listener_span: Option<Range<usize>>,
}

const SECTIONS: &str =
    "watch, admission, timeouts, limits, log, security, admin, listener, route, pool";

/// Parses `text`; on failure returns every problem found, with positions.
pub fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
    let mut problems = Vec::new();
    let (root, syntax) = DeTable::parse_recoverable(text);
    for error in syntax {
        problems.push(Problem::from_toml(&error));
    }
    if !problems.is_empty() {
        return Err(ConfigError::new(origin, text, problems));
    }
    let mut file = FileConfig::default();
    for (key, value) in root.into_inner() {
        let span = value.span();
        match key.get_ref().as_ref() {
            "admission" => section(value, &mut file.admission, &mut problems),
            "timeouts" => section(value, &mut file.timeouts, &mut problems),
            "limits" => section(value, &mut file.limits, &mut problems),
            "log" => section(value, &mut file.log, &mut problems),
            "security" => section(value, &mut file.security, &mut problems),
            "admin" => section(value, &mut file.admin, &mut problems),
            "listener" => {
                file.listener_span = Some(span);
                file.listeners = entries(value, "listener", &mut problems);
            }
            "route" => file.routes = entries(value, "route", &mut problems),
            "pool" => file.pools = pools(value, &mut problems),
            "watch" => section(value, &mut file.watch, &mut problems),
            other => problems.push(Problem::at(
                key.span(),
                format!("unknown section `{other}`, expected one of: {SECTIONS}"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(ConfigError::new(origin, text, problems))
    }
}

fn deserialize<T: DeserializeOwned>(value: Spanned<DeValue<'_>>) -> Result<T, Problem> {
    let fallback = value.span();
    T::deserialize(ValueDeserializer::from(value)).map_err(|e| {
        let mut problem = Problem::from_toml(&e);
        if problem.span.is_none() {
            problem.span = Some(fallback);
        }
        problem
    })
}

fn section<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    slot: &mut T,
    problems: &mut Vec<Problem>,
) {
    match deserialize(value) {
        Ok(parsed) => *slot = parsed,
        Err(problem) => problems.push(problem),
    }
}

fn entries<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        problems.push(Problem::at(
            span,
            format!("`{what}` must be an array of tables: write [[{what}]]"),
        ));
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| deserialize(item).map_err(|p| problems.push(p)).ok())
        .collect()
}

fn pools(
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, (Range<usize>, PoolFile)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(Problem::at(
            span,
            "`pool` must be a table of pools: write [pool.NAME]",
        ));
        return BTreeMap::new();
    };
    let mut pools = BTreeMap::new();
    for (name, body) in table {
        let name_span = name.span();
        if let Ok(pool) = deserialize::<PoolFile>(body).map_err(|p| problems.push(p)) {
            pools.insert(name.get_ref().to_string(), (name_span, pool));
        }
    }
    pools
}
