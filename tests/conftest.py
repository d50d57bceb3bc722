import signal

import pytest
import torch

# A shell's background job (`nohup make test &`, some CI runners) starts Python with Ctrl-C
# ignored; the tests of interrupted runs need it delivered as Python does by default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def one_thread():
    """Tiny tensors: on a shared 2-core machine intra-op threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
