//! The daemon's side of [`Control`]: what the admin API asks, carried out.

use super::App;
use crate::backend::BackendSpec;
use crate::control::{Control, ControlError, ReloadReport};
use std::future::Future;
use std::pin::Pin;

impl Control for App {
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

    fn renew_certificates(&self, listener: Option<&str>) -> Result<Vec<String>, ControlError> {
        self.listeners
            .acme()
            .renew_now(listener)
            .map_err(ControlError::Renew)
    }
}
