//! The operator dashboard under `/dashboard`: server-rendered pages (askama templates, every
//! value escaped) of the devices and load balancers, the drivers with their lifecycle buttons,
//! recent placements with their explanations, and the audit tail with its verification. One
//! stylesheet and one small script (a refresh every five seconds) are served from the binary:
//! no external asset, and a content security policy that allows nothing else.
//!
//! Admins only. A browser cannot send `X-Auth-Token`, so the login form takes the token and
//! keeps it in an HttpOnly, SameSite=Strict cookie scoped to `/dashboard`; each page checks it
//! as the API checks the header (a revoked Keystone token stops working here too). Under
//! noauth every visitor is the admin, as on the API. Every form that changes something
//! carries a token derived from the session and a secret of this process, and a request from
//! another origin is refused, so no other site can press the buttons for an operator.

mod html;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use self::html::{script, stylesheet};
use self::pages::{audit, driver_action, drivers, overview, placements};
use self::session::{login, login_form, logout};
use crate::Api;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/", get(overview))
        .route("/dashboard/drivers", get(drivers))
        .route("/dashboard/placements", get(placements))
        .route("/dashboard/audit", get(audit))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/drivers/{name}/{action}", post(driver_action))
        .route("/dashboard/assets/dashboard.css", get(stylesheet))
        .route("/dashboard/assets/dashboard.js", get(script))
}
