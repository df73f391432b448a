"""What every result file records about the machine: the CPU and the kernel level torch dispatched to, which the
trained weights (and so the demo's numbers) depend on."""
import json
import os
import subprocess
import sys

from mmunlearn.io import cpu_identity, provenance

PROBE = ("import json, torch\n"
         "from mmunlearn.io import provenance\n"
         "print(json.dumps(provenance({}, seed=1, dtype='float32')['cpu']))")


def _cpu_in_a_job(**env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout)


def test_a_result_records_the_kernel_level_torch_really_dispatched_to():
    """In a job that ran torch, the recorded level is torch's own dispatch: forcing it down with
    ATEN_CPU_CAPABILITY (torch's switch) changes what is recorded; the model name and extensions stay."""
    import torch

    natural = _cpu_in_a_job()
    assert natural["torch_kernels"] == torch.backends.cpu.get_cpu_capability()
    forced = _cpu_in_a_job(ATEN_CPU_CAPABILITY="default")
    assert forced["torch_kernels"] == "DEFAULT" != natural["torch_kernels"]
    assert forced["model"] == natural["model"] and forced["vector_extensions"] == natural["vector_extensions"]
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith(("flags", "Features"))).split(":")[1].split()
    assert set(natural["vector_extensions"]) <= set(flags)
    assert ("avx2" in flags) == ("avx2" in natural["vector_extensions"])


def test_a_job_without_torch_records_the_cpu_but_no_kernel_level():
    out = subprocess.run([sys.executable, "-c", "import json, sys\nfrom mmunlearn.io import cpu_identity\n"
                          "print(json.dumps([cpu_identity(), 'torch' in sys.modules]))"],
                         capture_output=True, text=True, check=True)
    cpu, torch_loaded = json.loads(out.stdout)
    assert not torch_loaded and cpu["torch_kernels"] is None and cpu["model"]
    assert provenance({"a": 1}, seed=3, dtype="float32")["cpu"] == cpu_identity()
