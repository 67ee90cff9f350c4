//! Enterpret's webhook endpoint as the stand-in serves it: each request admitted (path, key,
//! body, faults and the rate limit), its records checked against the contract, and the accepted
//! ones kept.

use super::*;

pub(super) async fn webhook(State(shared): State<Arc<Shared>>, Path(object): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut in_flight = InFlight::start(&shared, &headers, &body);
    let response = handle(&shared, &object, &headers, &body);
    in_flight.answer(response).await
}

fn handle(shared: &Shared, object: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let checked = admit(shared, object, headers, body).and_then(|list_key| {
        let list = records_of(list_key, headers, body)?;
        let accepted = check_records(shared, list_key, &list)?;
        Ok(keep(shared, list_key, accepted))
    });
    checked.unwrap_or_else(|refusal| *refusal)
}

/// What a request must pass before its body is read: the endpoint, scripted faults, the key,
/// random failures, the rate limit and the size. Returns the body's list key.
fn admit(shared: &Shared, object: &str, headers: &HeaderMap, body: &[u8]) -> Result<&'static str, Refused> {
    let (key, list_key): (&str, &'static str) = match object {
        "users" => (&shared.config.users_key, "users"),
        "accounts" => (&shared.config.accounts_key, "accounts"),
        _ => {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "ErrCodeNotFound",
                format!("no webhook for {}", quote(object)),
            )))
        }
    };
    scripted_fault(shared)?;
    match headers.get("api-key").and_then(|v| v.to_str().ok()) {
        Some(k) if k == key => {}
        Some(_) => {
            let msg = format!("invalid api-key for {list_key}");
            return Err(Box::new(error(StatusCode::UNAUTHORIZED, "ErrCodeUnauthorized", msg)));
        }
        None => {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "ErrCodeUnauthorized",
                "missing api-key header",
            )))
        }
    }
    injected_failure(shared, list_key)?;
    if body.len() > MAX_BYTES {
        let msg = format!("body is {} bytes; the limit is {MAX_BYTES}", body.len());
        return Err(Box::new(error(StatusCode::PAYLOAD_TOO_LARGE, "ErrCodePayloadTooLarge", msg)));
    }
    Ok(list_key)
}

/// The next scripted reply, if one is queued: it comes before any check.
pub(super) fn scripted_fault(shared: &Shared) -> Result<(), Refused> {
    let Some(fault) = shared.lock().faults.pop_front() else {
        return Ok(());
    };
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(status, "ErrCodeInjectedFault", "scripted fault");
    if let Some(secs) = fault.retry_after_secs {
        response.headers_mut().insert("retry-after", secs.into());
    }
    Err(Box::new(response))
}

/// `--fail-ratio`'s random 500s and `--rpm`'s 429s, per endpoint (`window`).
pub(super) fn injected_failure(shared: &Shared, window: &'static str) -> Result<(), Refused> {
    if shared.config.fail_ratio > 0.0 && rand::random::<f64>() < shared.config.fail_ratio {
        let msg = "injected failure (--fail-ratio)";
        return Err(Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, "ErrCodeInternal", msg)));
    }
    if let Some(rpm) = shared.config.rpm {
        rate_limit(shared, window, rpm)?;
    }
    Ok(())
}

/// A sliding minute per object: past `rpm` requests, a 429 with the seconds until a slot frees.
fn rate_limit(shared: &Shared, list_key: &'static str, rpm: u32) -> Result<(), Refused> {
    let mut inner = shared.lock();
    let window = inner.windows.entry(list_key).or_default();
    let now = Instant::now();
    while window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
        window.pop_front();
    }
    if window.len() as u64 >= u64::from(rpm) {
        let wait = window
            .front()
            .map(|t| 60u64.saturating_sub(now.duration_since(*t).as_secs()))
            .unwrap_or(1)
            .max(1);
        let msg = format!("more than {rpm} requests per minute");
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "ErrCodeRateLimitExceeded", msg);
        response.headers_mut().insert("retry-after", wait.into());
        return Err(Box::new(response));
    }
    window.push_back(now);
    Ok(())
}

/// Every record checked; one bad record refuses the whole request, as the real API does.
fn check_records(shared: &Shared, list_key: &str, list: &[Value]) -> Result<Vec<Accepted>, Refused> {
    let now = chrono::Utc::now().timestamp();
    let inner = shared.lock();
    let mut accepted = Vec::with_capacity(list.len());
    for (i, record) in list.iter().enumerate() {
        match check_record(record, now) {
            Ok(held) if inner.refused.contains(&held.id) => {
                return Err(Box::new(invalid(format!(
                    "{list_key}[{i}] (id {}): refused by the stand-in",
                    held.id
                ))))
            }
            Ok(held) => accepted.push(held),
            Err(refusal) => return Err(Box::new(refusal.respond(&format!("{list_key}[{i}]")))),
        }
    }
    Ok(accepted)
}

/// Upserts accepted records by id, counting how often each was received.
fn keep(shared: &Shared, list_key: &str, accepted: Vec<Accepted>) -> Response {
    let mut inner = shared.lock();
    let count = accepted.len() as u64;
    let object = if list_key == "users" { "users" } else { "accounts" };
    let arrivals = inner.arrivals.entry(object).or_default();
    for record in &accepted {
        if arrivals.len() >= super::ARRIVALS_CAPACITY {
            arrivals.pop_front();
        }
        arrivals.push_back(record.id.clone());
    }
    let held = if list_key == "users" {
        &mut inner.users
    } else {
        &mut inner.accounts
    };
    for record in accepted {
        let received_count = held.get(&record.id).map(|r| r.received_count).unwrap_or(0) + 1;
        let kept = Kept {
            created_at: record.created_at,
            attributes: record.attributes,
            received_count,
        };
        held.insert(record.id, kept);
    }
    inner.stats.accepted_requests += 1;
    inner.stats.records_received += count;
    (StatusCode::OK, Json(json!({ "status": "ok", "received": count }))).into_response()
}
