//! What the admin API may ask of the daemon.

use super::App;
use crate::admin::{AdminControl, ControlError};
use crate::backend::BackendSpec;
use std::future::Future;
use std::pin::Pin;

use super::reload::ReloadReport;

impl AdminControl for App {
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ReloadReport, ControlError>> + Send + '_>> {
        Box::pin(async move { self.reload("admin").await.map_err(ControlError::Reload) })
    }

    fn push(
        &self,
        pool: &str,
        specs: Vec<BackendSpec>,
    ) -> Result<Option<ReloadReport>, ControlError> {
        self.set_members(pool, specs, "push")
            .map_err(ControlError::Members)
    }
}
