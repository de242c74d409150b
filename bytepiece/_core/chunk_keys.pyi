import numpy as np
import numpy.typing as npt

def chunk_keys(chunks: list[bytes]) -> npt.NDArray[np.uint64]: ...
def chunk_scripts(
    chunks: list[bytes], script_of_lead: npt.NDArray[np.int64], nscripts: int
) -> npt.NDArray[np.int64]: ...
