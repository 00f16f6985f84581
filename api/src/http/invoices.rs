//! `GET /invoices/{id}/pdf`: an invoice as PDF, with the same bearer token as the GraphQL API.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use gateway_domain::AppError;

use super::{authenticate, error_response, status_of, AppState};

/// An invoice as PDF, for the roles that may see invoices (PRODUCT.md 2.2), with the same
/// bearer token as the GraphQL API. Errors use the GraphQL error shape and codes.
pub(super) async fn pdf(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let principal = authenticate(&state, &headers)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let id = gateway_domain::validation::uuid_id("id", &id)?;
        let mut conn = state.pool.get().await?;
        let invoice =
            gateway_domain::billing::invoices::load_visible(&mut conn, &principal, id).await?;
        let pdf = gateway_domain::billing::pdf::render(&invoice)?;
        Ok::<_, AppError>((invoice.number, pdf))
    }
    .await;
    match result {
        Ok((number, pdf)) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{number}.pdf\""),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_owned()),
            ],
            pdf,
        )
            .into_response(),
        Err(e) => error_response(status_of(&e), e.code(), &e.message()),
    }
}
