use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::Error;
use crate::pb::api_service_client::ApiServiceClient;
use crate::pb::{self, CreateServerRequest, CreateServerResponse, Server};
use crate::watch::ServerWatch;

/// How to connect: token, TLS, and how hard WatchServer tries to resume.
#[derive(Clone, Debug)]
pub struct Options {
    token: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<tonic::transport::ClientTlsConfig>,
    pub(crate) watch_resumes: u32,
    pub(crate) resume_backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: None,
            #[cfg(feature = "tls")]
            tls: None,
            watch_resumes: 5,
            resume_backoff: Duration::from_millis(200),
        }
    }
}

impl Options {
    /// Send `authorization: Bearer <token>` with every call (an empty token sends nothing).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// Speak TLS with this configuration (default: plaintext, for loopback).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: tonic::transport::ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How many times in a row a watch reopens a broken stream, waiting `backoff`, then twice as long, ….
    pub fn watch_resumes(mut self, resumes: u32, backoff: Duration) -> Self {
        self.watch_resumes = resumes;
        self.resume_backoff = backoff;
        self
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// The generated client with the token interceptor.
pub type ApiClient = ApiServiceClient<InterceptedService<Channel, Auth>>;

/// A connection to one drover API. Cheap to clone (one HTTP/2 channel underneath).
#[derive(Clone)]
pub struct Client {
    api: ApiClient,
    pub(crate) options: Options,
}

/// Read-only calls are retried on UNAVAILABLE this many times in all; writes never are.
const SAFE_ATTEMPTS: u32 = 4;

impl Client {
    /// Connect to the API at `addr` ("host:port").
    pub async fn connect(addr: &str, options: Options) -> Result<Client, Error> {
        #[allow(unused_mut)]
        let mut scheme = "http";
        #[cfg(feature = "tls")]
        if options.tls.is_some() {
            scheme = "https";
        }
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| Error::local(Code::InvalidArgument, format!("address {addr:?}: {e}")))?;
        #[cfg(feature = "tls")]
        let endpoint = match &options.tls {
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| Error::local(Code::InvalidArgument, format!("TLS: {e}")))?,
            None => endpoint,
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::local(Code::Unavailable, format!("connect {addr}: {e}")))?;
        let token = match &options.token {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                Error::local(Code::InvalidArgument, "the token is not valid metadata")
            })?),
            None => None,
        };
        let api = ApiServiceClient::with_interceptor(channel, Auth(token));
        Ok(Client { api, options })
    }

    /// The generated ApiService client on this connection, for every other call (no retries).
    pub fn api(&self) -> ApiClient {
        self.api.clone()
    }

    /// Create servers; never retried (a retry could create them twice).
    pub async fn create_server(
        &self,
        req: CreateServerRequest,
    ) -> Result<CreateServerResponse, Error> {
        Ok(self.api().create_server(req).await?.into_inner())
    }

    /// One server; retried on UNAVAILABLE (it only reads).
    pub async fn get_server(&self, id: &str) -> Result<Server, Error> {
        let req = pb::GetServerRequest { id: id.to_owned() };
        let resp = self
            .retry_safe(|mut api| {
                let req = req.clone();
                async move { api.get_server(req).await }
            })
            .await?;
        resp.into_inner()
            .server
            .ok_or_else(|| Error::local(Code::Internal, "response without its server"))
    }

    /// Delete a server; not retried (a second delete would say NOT_FOUND).
    pub async fn delete_server(&self, id: &str) -> Result<Server, Error> {
        let resp = self
            .api()
            .delete_server(pb::DeleteServerRequest {
                id: id.to_owned(),
                ..Default::default()
            })
            .await?;
        resp.into_inner()
            .server
            .ok_or_else(|| Error::local(Code::Internal, "response without its server"))
    }

    /// Watch a server to its final state; see [`ServerWatch`].
    pub fn watch_server(&self, id: &str, since_revision: i64) -> ServerWatch {
        ServerWatch::new(self.clone(), id.to_owned(), since_revision)
    }

    async fn retry_safe<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(ApiClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut backoff = Duration::from_millis(100);
        for attempt in 1.. {
            match call(self.api()).await {
                Err(s) if s.code() == Code::Unavailable && attempt < SAFE_ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return other.map_err(Error::from),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}
