//! `ebb stand-in`: the local stand-in for Enterpret and for a profiles API, until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::error::Error;
use crate::standin::{StandIn, StandInConfig};

/// `ebb stand-in`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StandInArgs {
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, env = "STANDIN_USERS_KEY", default_value = "local-users-key", hide_env_values = true)]
    pub users_key: String,
    #[arg(long, env = "STANDIN_ACCOUNTS_KEY", default_value = "local-accounts-key", hide_env_values = true)]
    pub accounts_key: String,
    /// The profiles API's token, sent as `Authorization: Token <token>`.
    #[arg(
        long,
        env = "STANDIN_PROFILES_TOKEN",
        default_value = "local-profiles-token",
        hide_env_values = true
    )]
    pub profiles_token: String,
    /// Requests per minute per object before answering 429.
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Share of requests answered with a 500 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_ratio: f64,
    /// Delay before each webhook reply.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

pub(super) async fn stand_in(args: StandInArgs) -> Result<ExitCode, Error> {
    let addr = SocketAddr::new(args.host, args.port);
    let config = StandInConfig {
        users_key: args.users_key,
        accounts_key: args.accounts_key,
        profiles_token: args.profiles_token,
        rpm: args.rpm,
        fail_ratio: args.fail_ratio.clamp(0.0, 1.0),
        latency: Duration::from_millis(args.latency_ms),
    };
    let server = StandIn::start(addr, config).await.map_err(|source| Error::Io {
        context: format!("stand-in cannot listen on {addr}"),
        source,
    })?;
    println!("stand-in for Enterpret and for profiles listening on {}", server.url());
    println!("  Enterpret: POST /webhook/users/custom, /webhook/accounts/custom · GET /records/users, /records/accounts");
    println!("  profiles:  POST /users/import, DELETE /users/{{email}} · GET /records/profiles");
    println!("  any HTTP:  POST, PUT, PATCH (any JSON) or DELETE /http/{{path}} · GET /records/http");
    println!("  both:      GET /stats, /requests");
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}
