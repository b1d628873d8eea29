//! `/vectors/index/{name}/search` and `/vectors/index/{name}/search/batch`: nearest
//! neighbours, optionally filtered by metadata, one query per request or many.
//! Searches run straight against the index (not through its actor), so they go on while
//! the index takes writes, at most `search_threads` at once: cheap ones on the HTTP worker
//! when the index's lock is free, the others on the blocking pool.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use vectord_actors::filter::Filter;
use vectord_actors::index::{Extras, Hit, Rescore, DEFAULT_OVERSAMPLING};
use vectord_actors::params::IndexParams;
use vectord_actors::registry::IndexHandle;

use super::body::{self, Plain};
use super::errors::ApiError;
use super::schema::{
    BatchSearchResponse, ErrorBody, SearchResponse, SearchResult, VectorEncoding, VectorOut,
};
use super::select_api::Include;
use super::AppState;

/// Searches up to this `ef` (without filter) run on the HTTP worker itself...
const INLINE_MAX_EF: usize = 256;
/// ...when the index has at most this many unsealed points to scan.
const INLINE_MAX_UNSEALED: usize = 4096;
/// The `k` of the searches of one batch add up to at most this, which bounds its answer
/// to ten times a single search's largest (1,000 results).
pub const MAX_BATCH_RESULTS: usize = 10_000;
/// The HTTP worker runs this many searches of a batch between two yields...
const INLINE_SEARCHES: usize = 2;
/// ...and a search thread that helps it takes this many (a few milliseconds at most for
/// searches of moderate width) before it gives its permit back.
const HELPER_SEARCHES: usize = 16;
/// A search thread must have been free this long before a batch takes it: one that is
/// free only while another client reads its answer and sends its next request is left to
/// that client.
const HELPER_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

/// A search. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"vector": [1, 0.1, 0, 0], "k": 5, "filter": {"lang": "en"}}))]
pub struct SearchRequest {
    /// The query: `dim` finite numbers, or the base64 of their little-endian f32 values.
    #[serde(deserialize_with = "body::f32_vector")]
    #[schema(value_type = super::schema::VectorIn)]
    pub vector: Vec<f32>,
    /// 1 to `vectord.max_k` (1,000 by default; a setting, so not written as a bound here).
    #[serde(deserialize_with = "body::whole")]
    #[schema(minimum = 1)]
    pub k: usize,
    /// k-10000 (default max(k, the index's ef_search)).
    #[serde(default, deserialize_with = "body::whole_opt")]
    #[schema(minimum = 1, maximum = 10000)]
    pub ef: Option<usize>,
    /// Which items may be returned, in Chroma's `where` syntax: `{"lang": "en"}` (a bare
    /// value is `$eq`), `{"year": {"$gte": 2021}}`, `{"$or": [...]}`, `{"$id": {"$in":
    /// [...]}}`; operators `$eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains
    /// $exists $and $or $not`. A filter that cannot be read is 400 `invalid_filter`,
    /// naming where.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// What to return of each result besides its id and distance: `"metadata"` (always
    /// returned), `"vector"` (the item's vector as stored) and `"document"` (the item's
    /// document; `null` for an item without one).
    pub include: Option<Vec<Include>>,
    /// How result vectors are written: `float` (JSON numbers, the default) or `base64`
    /// (of the little-endian f32 values).
    #[serde(default)]
    pub vector_encoding: VectorEncoding,
    /// Quantized indexes: score the best candidates again with the f32 vectors (default
    /// true); without, results are ordered by and report the int8 distances.
    pub rescore: Option<bool>,
    /// Quantized indexes: candidates rescored per result asked for, per segment, 1-100
    /// (default 4).
    #[schema(minimum = 1, maximum = 100)]
    pub oversampling: Option<f32>,
}

/// Several searches of one index in one request. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"searches": [{"vector": [1, 0.1, 0, 0], "k": 5}, {"vector": [0, 1, 0, 0], "k": 2, "filter": {"lang": "en"}}]}))]
pub struct BatchSearchRequest {
    /// 1 to `vectord.max_batch_searches` (1,000 by default; a setting, so not written as
    /// a bound here) searches, each as the body of `search`; their `k` add up to at most
    /// 10,000.
    #[schema(min_items = 1)]
    pub searches: Vec<SearchRequest>,
}

/// A search checked against its index: the query as the index compares it, `ef` decided.
struct Checked {
    query: Vec<f32>,
    k: usize,
    ef: usize,
    filter: Option<Filter>,
    /// Return each result's vector, written so.
    vectors: Option<VectorEncoding>,
    /// Return each result's document.
    documents: bool,
    rescore: Rescore,
}

impl Checked {
    fn extras(&self) -> Extras {
        Extras {
            vector: self.vectors.is_some(),
            document: self.documents,
        }
    }

    /// Asks for nothing but ids, distances and metadata, with the default use of codes.
    fn plain(&self) -> bool {
        self.extras() == Extras::default() && self.rescore == Rescore::default()
    }
}

/// The `k` live items nearest to the query (that match the filter), nearest first.
#[utoipa::path(post, path = "/vectors/index/{name}/search", tag = "search", request_body = SearchRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = SearchResponse),
        (status = 400, description = "invalid query, k, ef or filter", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn search(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    let bytes = body::read(&req, payload, state.max_body_bytes).await?;
    let search = check(&state, handle.index.params(), decode(&bytes)?, None)?;
    let _permit = state
        .search_permits
        .acquire()
        .await
        .map_err(|_| shutting_down())?;
    let (vectors, documents) = (search.vectors, search.documents);
    let hits = search_one(&handle, search).await?;
    Ok(HttpResponse::Ok().json(SearchResponse {
        results: results(hits, vectors, documents),
    }))
}

/// Several searches at once: each answered exactly as `search` would answer it, in one
/// round trip. The HTTP worker runs them, helped by search threads that have been idle a
/// while (see `run_batch`), so one client's batch uses the cores that no other request
/// needs.
#[utoipa::path(post, path = "/vectors/index/{name}/search/batch", tag = "search", request_body = BatchSearchRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = BatchSearchResponse),
        (status = 400, description = "no searches, too many, or an invalid one (named by its position, `searches[i]`)", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn search_batch(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    let bytes = body::read(&req, payload, state.max_body_bytes).await?;
    let requests = decode_batch(&bytes)?;
    let limit = state.limits.max_batch_searches;
    if requests.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "searches is empty: a batch holds at least one search",
        ));
    }
    if requests.len() > limit {
        return Err(ApiError::bad_request(
            "too_many_searches",
            format!(
                "the batch holds {} searches, more than the limit of {limit} (vectord.max_batch_searches)",
                requests.len()
            ),
        ));
    }
    let params = handle.index.params();
    let searches = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| check(&state, params, r, Some(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let results_asked: usize = searches.iter().map(|s| s.k).sum();
    if results_asked > MAX_BATCH_RESULTS {
        return Err(ApiError::bad_request(
            "too_many_results",
            format!(
                "the searches of the batch ask for {results_asked} results in all (the sum of their k), more than the limit of {MAX_BATCH_RESULTS}"
            ),
        ));
    }

    let answers = run_batch(&state.search_permits, &handle, searches).await?;
    Ok(HttpResponse::Ok().json(BatchSearchResponse { results: answers }))
}

/// The searches of a batch and the next one to run, shared by the HTTP worker that runs
/// the batch and the search threads that help it.
struct Batch {
    searches: Vec<Checked>,
    next: AtomicUsize,
    /// Set when the request is given up (an error, or the client went away): helpers stop
    /// taking searches.
    cancelled: AtomicBool,
    /// Helper stints finished so far.
    helpers_done: AtomicUsize,
}

impl Batch {
    /// The next search nobody has taken yet, with its position.
    fn take(&self) -> Option<(usize, &Checked)> {
        if self.cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.searches.get(i).map(|s| (i, s))
    }

    fn left(&self) -> usize {
        self.searches
            .len()
            .saturating_sub(self.next.load(Ordering::Relaxed))
    }
}

/// A search of a batch, by its position: what goes to the blocking pool when it does not
/// run on the HTTP worker.
struct BatchSearch(Arc<Batch>, usize);

impl Borrow<Checked> for BatchSearch {
    fn borrow(&self) -> &Checked {
        &self.0.searches[self.1]
    }
}

/// One search, for the single route and for the HTTP worker's share of a batch. A search
/// without filter, of moderate width, over an index with few unsealed points (which are
/// scanned; the count is read for each search, as writes may come meanwhile) takes well
/// under a millisecond: it runs right here, on the HTTP worker, if the index's lock is
/// free (a hand-off to the blocking pool and back costs as much as the search itself).
/// Anything else goes to the blocking pool, so that no worker ever waits behind an
/// index's writer or a long search.
async fn search_one<S>(handle: &IndexHandle, search: S) -> Result<Vec<Hit>, ApiError>
where
    S: Borrow<Checked> + Send + 'static,
{
    let index = &handle.index;
    let s: &Checked = search.borrow();
    let cheap = s.filter.is_none()
        && s.plain()
        && s.ef <= INLINE_MAX_EF
        && index.stats().unsealed_points <= INLINE_MAX_UNSEALED;
    if cheap {
        let inline = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            vectord_actors::faults::maybe_panic("search", &handle.name);
            index.try_search(&s.query, s.k, s.ef, None)
        }))
        .map_err(|_| failed(&handle.name, "panicked".into()))?;
        if let Some(hits) = inline {
            return Ok(hits);
        }
    }
    let (index, name) = (index.clone(), handle.name.clone());
    web::block(move || {
        vectord_actors::faults::maybe_panic("search", &name);
        run(&index, search.borrow())
    })
    .await
    .map_err(|e| failed(&handle.name, e.to_string()))
}

/// Cancels its batch when dropped: when `run_batch` returns, or its future is dropped.
struct CancelOnDrop(Arc<Batch>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }
}

/// Runs the searches of a batch and answers them in order. The HTTP worker that took the
/// request runs them itself, a few at a time (`INLINE_SEARCHES`) with a yield between, so
/// the other connections of that worker wait no longer than behind one single search: a
/// hand-off to another thread costs tens of µs on virtual cores and left them 20–30 % idle
/// when every search of a batch went to the blocking pool. Each search runs as
/// `search_one` runs a single one: cheap ones on the worker, the others (and any that meet
/// a writer's lock) on the blocking pool. When a search thread has been free for
/// `HELPER_DELAY` (or a helper's permit just came back and nobody took it) and enough
/// searches are left, a helper on the blocking pool takes `HELPER_SEARCHES` of them and
/// gives its thread back: a lone client's batch uses the idle cores, a thread free only
/// between another client's requests is left to that client (taking it cost ~12 % with
/// two clients), and a request waiting for a search thread gets one within a stint.
async fn run_batch(
    permits: &Arc<Semaphore>,
    handle: &IndexHandle,
    searches: Vec<Checked>,
) -> Result<Vec<Vec<SearchResult>>, ApiError> {
    let count = searches.len();
    let batch = Arc::new(Batch {
        searches,
        next: AtomicUsize::new(0),
        cancelled: AtomicBool::new(false),
        helpers_done: AtomicUsize::new(0),
    });
    let _cancel = CancelOnDrop(batch.clone());
    let own = permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| shutting_down())?;
    let ran_here = vectord_actors::metrics::metrics()
        .batch_searches
        .with_label_values(&["http_worker"]);
    let mut answers: Vec<Vec<SearchResult>> = (0..count).map(|_| Vec::new()).collect();
    let mut helpers = Vec::new();
    // Since when a search thread has been seen free at every check.
    let mut free_since: Option<std::time::Instant> = None;
    let mut helpers_seen = 0;
    loop {
        let free = permits.available_permits() > 0;
        if free {
            free_since.get_or_insert_with(std::time::Instant::now);
        } else {
            free_since = None;
        }
        // A helper that finished and whose permit nobody took shows that nobody waits.
        let done = batch.helpers_done.load(Ordering::Acquire);
        let returned = done > helpers_seen && free;
        helpers_seen = done;
        let idle = returned || free_since.is_some_and(|t| t.elapsed() >= HELPER_DELAY);
        if idle && batch.left() >= HELPER_SEARCHES {
            if let Ok(permit) = permits.clone().try_acquire_owned() {
                helpers.push(helper(permit, batch.clone(), handle));
            }
        }
        let mut ran = 0;
        while ran < INLINE_SEARCHES {
            let Some((i, _)) = batch.take() else {
                break;
            };
            let hits = search_one(handle, BatchSearch(batch.clone(), i)).await?;
            let s = &batch.searches[i];
            answers[i] = results(hits, s.vectors, s.documents);
            ran += 1;
        }
        if ran == 0 {
            break;
        }
        ran_here.inc_by(ran as u64);
        tokio::task::yield_now().await;
    }
    drop(own);
    for part in futures::future::join_all(helpers).await {
        for (i, answer) in part.map_err(|e| failed(&handle.name, e.to_string()))? {
            answers[i] = answer;
        }
    }
    Ok(answers)
}

/// A stint of a search thread on a batch: up to `HELPER_SEARCHES` searches, then its
/// permit goes back (to whoever waits first).
fn helper(
    permit: OwnedSemaphorePermit,
    batch: Arc<Batch>,
    handle: &IndexHandle,
) -> impl std::future::Future<
    Output = Result<Vec<(usize, Vec<SearchResult>)>, actix_web::error::BlockingError>,
> {
    let (index, name) = (handle.index.clone(), handle.name.clone());
    web::block(move || {
        vectord_actors::faults::maybe_panic("search", &name);
        let mut done = Vec::new();
        while done.len() < HELPER_SEARCHES {
            let Some((i, search)) = batch.take() else {
                break;
            };
            let hits = run(&index, search);
            done.push((i, results(hits, search.vectors, search.documents)));
        }
        drop(permit);
        batch.helpers_done.fetch_add(1, Ordering::Release);
        vectord_actors::metrics::metrics()
            .batch_searches
            .with_label_values(&["search_thread"])
            .inc_by(done.len() as u64);
        done
    })
}

/// Checks a search against the index's parameters and the limits; `place` is its position
/// in a batch, named in the message of an error.
fn check(
    state: &AppState,
    params: &IndexParams,
    request: SearchRequest,
    place: Option<usize>,
) -> Result<Checked, ApiError> {
    let at = |mut e: ApiError| {
        if let Some(i) = place {
            e.message = format!("searches[{i}]: {}", e.message);
        }
        e
    };
    let ef = params
        .check_search(request.k, request.ef, state.limits.max_k)
        .map_err(|e| at(e.into()))?;
    let filter = match &request.filter {
        None => None,
        Some(value) => {
            let path = match place {
                None => "filter".to_string(),
                Some(i) => format!("searches[{i}].filter"),
            };
            let filter = Filter::parse(value, &path, state.limits.filter())?;
            (!filter.is_empty()).then_some(filter)
        }
    };
    let query = match place {
        None => params.check_vector(request.vector, "vector"),
        Some(i) => params.check_vector(request.vector, &format!("searches[{i}].vector")),
    }?;
    let include = request.include.unwrap_or_default();
    let oversampling = request.oversampling.unwrap_or(DEFAULT_OVERSAMPLING);
    if !(1.0..=100.0).contains(&oversampling) {
        return Err(at(ApiError::bad_request(
            "invalid_oversampling",
            format!("oversampling {oversampling} is out of range 1-100"),
        )));
    }
    Ok(Checked {
        query,
        k: request.k,
        ef,
        filter,
        vectors: include
            .contains(&Include::Vector)
            .then_some(request.vector_encoding),
        documents: include.contains(&Include::Document),
        rescore: Rescore {
            rescore: request.rescore.unwrap_or(true),
            oversampling,
        },
    })
}

fn run(index: &vectord_actors::index::Index, s: &Checked) -> Vec<Hit> {
    index.search_with(
        &s.query,
        s.k,
        s.ef,
        s.filter.as_ref(),
        s.extras(),
        s.rescore,
    )
}

/// The answer's results; vectors (when the search asked for them) written as `vectors`
/// says, documents when it asked for them.
fn results(hits: Vec<Hit>, vectors: Option<VectorEncoding>, documents: bool) -> Vec<SearchResult> {
    hits.into_iter()
        .map(|h| SearchResult {
            id: h.id,
            distance: h.distance,
            metadata: h.metadata,
            vector: vectors.map(|encoding| VectorOut::new(h.vector, encoding)),
            document: documents.then_some(h.document),
        })
        .collect()
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "vectord is shutting down",
    )
}

fn failed(index: &str, e: String) -> ApiError {
    log::error!("index {index:?}: search failed: {e}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("search on index {index:?} failed"),
    )
}

const SEARCH_KEYS: [&str; 4] = ["vector", "k", "ef", "filter"];

/// The search request in `bytes`: the usual shape (vector, k, ef) decoded in one pass,
/// anything else (a filter, an error to explain) by serde.
pub fn decode(bytes: &[u8]) -> Result<SearchRequest, ApiError> {
    if let Some(request) = body::plain_object(bytes, &SEARCH_KEYS).and_then(plain_request) {
        return Ok(request);
    }
    body::json(bytes)
}

/// The searches of a batch: decoded in one pass when every one has the usual shape, else
/// by serde (whose messages name the search at fault: `searches[2].vector`).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<SearchRequest>, ApiError> {
    if let Some(objects) = body::plain_objects(bytes, "searches", &SEARCH_KEYS) {
        let plain: Option<Vec<SearchRequest>> = objects.into_iter().map(plain_request).collect();
        if let Some(requests) = plain {
            return Ok(requests);
        }
    }
    body::json::<BatchSearchRequest>(bytes).map(|b| b.searches)
}

/// A search from the fields `plain_object` read, if they are a search without filter.
fn plain_request(fields: Vec<(&str, Plain)>) -> Option<SearchRequest> {
    let (mut vector, mut k, mut ef) = (None, None, None);
    for (key, value) in fields {
        match (key, value) {
            ("vector", Plain::Numbers(v)) => vector = Some(v),
            ("k", Plain::Whole(n)) => k = Some(n),
            ("ef", Plain::Whole(n)) => ef = Some(n),
            ("ef" | "filter", Plain::Null) => {}
            _ => return None,
        }
    }
    Some(SearchRequest {
        vector: vector?,
        k: k?,
        ef,
        filter: None,
        include: None,
        vector_encoding: VectorEncoding::Float,
        rescore: None,
        oversampling: None,
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/vectors/index/{name}/search", "POST").route(web::post().to(search)),
    );
    cfg.service(
        super::resource("/vectors/index/{name}/search/batch", "POST")
            .route(web::post().to(search_batch)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &str) -> (Vec<f32>, usize, Option<usize>, bool) {
        let r = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {}", e.message));
        (r.vector, r.k, r.ef, r.filter.is_some())
    }

    fn refused(body: &str) -> String {
        match decode(body.as_bytes()) {
            Ok(_) => panic!("{body} accepted"),
            Err(e) => e.message,
        }
    }

    type Parts = Vec<(Vec<f32>, usize, Option<usize>, bool)>;

    fn batch(body: &str) -> Result<Parts, String> {
        let parts = |list: Vec<SearchRequest>| {
            list.into_iter()
                .map(|r| (r.vector, r.k, r.ef, r.filter.is_some()))
                .collect::<Parts>()
        };
        let fast = decode_batch(body.as_bytes())
            .map(parts)
            .map_err(|e| e.message);
        let slow = body::json::<BatchSearchRequest>(body.as_bytes())
            .map(|b| parts(b.searches))
            .map_err(|e| e.message);
        assert_eq!(fast, slow, "{body}");
        fast
    }

    #[test]
    fn the_batch_decoder_agrees_with_serde() {
        assert_eq!(
            batch(r#"{"searches":[{"vector":[1,2],"k":1},{"k":2,"ef":9,"vector":[0.5]}]}"#),
            Ok(vec![
                (vec![1.0, 2.0], 1, None, false),
                (vec![0.5], 2, Some(9), false)
            ])
        );
        assert_eq!(
            batch(" { \"searches\" : [ { \"vector\" : [ 3 ] , \"k\" : 1 , \"ef\" : null } ] } "),
            Ok(vec![(vec![3.0], 1, None, false)])
        );
        assert_eq!(
            batch(r#"{"searches":[{"vector":[1],"k":1},{"vector":[1],"k":1,"filter":{"a":1}}]}"#),
            Ok(vec![
                (vec![1.0], 1, None, false),
                (vec![1.0], 1, None, true)
            ])
        );
        assert_eq!(batch(r#"{"searches":[]}"#), Ok(vec![]));
        for body in [
            r#"{"searches":[{"vector":[1],"k":1},]}"#,
            r#"{"searches":[{"vector":[1],"k":1}],"searches":[]}"#,
            r#"{"searches":[{"vector":[1],"k":1,"k":2}]}"#,
            r#"{"searches":[{"vector":[1]}]}"#,
            r#"{"searches":[{"vector":[1],"k":1}]} x"#,
            r#"{"searches":{"vector":[1],"k":1}}"#,
            r#"{"searches":[{"vector":[1],"k":1}],"k":1}"#,
            r#"{"searches":[[1]]}"#,
            r#"{}"#,
        ] {
            assert!(batch(body).is_err(), "{body} accepted");
        }
        let m = batch(r#"{"searches":[{"vector":[1],"k":1},{"vector":[1],"k":-1}]}"#);
        assert!(m.unwrap_err().contains("searches[1].k"));
    }

    #[test]
    fn the_one_pass_decoder_agrees_with_serde() {
        // Decoded by the one-pass path.
        assert_eq!(
            parts(r#"{"vector":[1,-2.5,3e2],"k":3}"#),
            (vec![1.0, -2.5, 300.0], 3, None, false)
        );
        assert_eq!(
            parts(" {\n \"k\" : 2 , \"ef\":null, \"vector\" : [ 0.1 ] , \"filter\": null } "),
            (vec![0.1], 2, None, false)
        );
        assert_eq!(
            parts(r#"{"ef":40,"vector":[],"k":1}"#),
            (vec![], 1, Some(40), false)
        );
        assert_eq!(
            parts(r#"{"vector":"AACAPwAAIMA=","k":1}"#),
            (vec![1.0, -2.5], 1, None, false)
        );
        // Left to serde, with the same meaning.
        assert_eq!(
            parts(r#"{"vector":[1],"k":2.0,"filter":{"a":1}}"#),
            (vec![1.0], 2, None, true)
        );
        assert_eq!(
            parts(r#"{"vect\u006fr":[1],"k":2}"#),
            (vec![1.0], 2, None, false)
        );
        // Refused either way, with the field named.
        assert!(refused(r#"{"vector":[1],"k":1,"k":2}"#).contains("duplicate field"));
        assert!(refused(r#"{"vector":[1],"k":1,"kk":2}"#).contains("unknown field"));
        assert!(refused(r#"{"vector":[1,],"k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":[01],"k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":"AACAPw=","k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":"AACA","k":1}"#).contains("4-byte"));
        assert!(refused(r#"{"vector":null,"k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":[1],"k":-1}"#).contains("k"));
        assert!(refused(r#"{"vector":[1],"k":99999999999999999999999}"#).contains("k"));
        assert!(refused(r#"{"vector":[1]}"#).contains("missing field `k`"));
        assert!(refused(r#"{"vector":[1],"k":1} x"#).contains("trailing"));
        assert!(refused(r#"{"vector":[1],"k":1"#).contains("EOF"));
    }
}
