//! The network seam: how a node or a client makes its connections and how a
//! server receives them. Production dials and accepts real TCP; the
//! simulator (`raftwatch-sim`) supplies a [`Dialer`] and an [`Incoming`]
//! over turmoil's simulated network, so the real tonic, hyper and h2 code
//! runs unchanged on top of it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint};

/// `Dialer` makes a (lazy) channel from an endpoint.
pub type Dialer = Arc<dyn Fn(&Endpoint) -> Channel + Send + Sync>;

/// `tcp_dialer` dials real TCP ([`Endpoint::connect_lazy`]).
pub fn tcp_dialer() -> Dialer {
    Arc::new(|e: &Endpoint| e.connect_lazy())
}

/// `Io` is what a connection must be to carry gRPC.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// `BoxIo` is an accepted connection of any transport.
pub struct BoxIo(Pin<Box<dyn Io>>);

impl BoxIo {
    /// `new` boxes a connection.
    pub fn new(io: impl Io) -> BoxIo {
        BoxIo(Box::pin(io))
    }
}

impl std::fmt::Debug for BoxIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxIo")
    }
}

impl AsyncRead for BoxIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for BoxIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for BoxIo {
    // Nothing reads the peer address of a connection.
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// `Incoming` is a server's stream of accepted connections.
pub type Incoming = Pin<Box<dyn tokio_stream::Stream<Item = io::Result<BoxIo>> + Send>>;
