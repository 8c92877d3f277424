//! What every DynamoDB adapter of wagate shares: the text of a failed request, the
//! "condition failed" idiom of conditional writes, and reading every page of a `Scan` or
//! `Query`. Each capability's own adapter
//! (`tenant/dynamo.rs`, `delivery/dynamo.rs`, `health/dynamo.rs`, `audit/dynamo.rs`) builds its
//! requests and maps these onto its own errors.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

/// One DynamoDB item (also the shape of a page's `LastEvaluatedKey`).
pub type Item = HashMap<String, AttributeValue>;

/// The error code of a conditional write whose condition did not hold.
pub const CONDITION_FAILED: &str = "ConditionalCheckFailedException";
/// The error code of a `TransactWriteItems` that was cancelled (a condition of one of its
/// items failed, or it met a conflict: the caller tells which from what it reads back).
pub const TRANSACTION_CANCELLED: &str = "TransactionCanceledException";

/// The whole error chain of a failed request, as one line for a log or an error value. It
/// holds the service's message and the request id, never the values of an item.
pub fn error_text<E, R>(e: SdkError<E, R>) -> String
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(e).to_string()
}

/// A conditional write's result: `Ok(Some(output))` when it was written, `Ok(None)` when its
/// condition did not hold (or, for `TransactWriteItems`, when the transaction was cancelled),
/// `Err` with the request's error text for any other failure (unreachable, throttled,
/// refused).
pub fn conditional<T, E, R>(res: Result<T, SdkError<E, R>>) -> Result<Option<T>, String>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match res {
        Ok(out) => Ok(Some(out)),
        Err(e) if is_condition_failure(&e) => Ok(None),
        Err(e) => Err(error_text(e)),
    }
}

/// Did the request fail because its condition did not hold?
pub fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| code == CONDITION_FAILED || code == TRANSACTION_CANCELLED)
}

/// Every item a paginated read returns, page after page: `page(start)` reads one page from
/// `start` (`None` first) and answers its items and its `LastEvaluatedKey`; reading stops at
/// the first page without one (an empty key counts as none).
pub async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Item>, String>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: Future<Output = Result<(Vec<Item>, Option<Item>), String>>,
{
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let (mut got, next) = page(start).await?;
        items.append(&mut got);
        match next {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// Every item of `table`, by `Scan` pages (`consistent` for strongly consistent reads).
pub async fn scan_all(client: &Client, table: &str, consistent: bool) -> Result<Vec<Item>, String> {
    all_pages(|start| async move {
        let resp = client
            .scan()
            .table_name(table)
            .consistent_read(consistent)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(error_text)?;
        Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
    })
    .await
}
