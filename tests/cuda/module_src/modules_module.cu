// modules_module.cu - device code that tests/cuda/modules.cu loads at run
// time through the driver API.  The build turns it into a cubin, PTX and a
// fatbin (tests/CMakeLists.txt) and embeds all three in the program.
extern "C" {

__device__ int mod_table[256];
__device__ int mod_init[4] = { 11, 22, 33, 44 };
__constant__ float mod_const[4] = { 1.5f, 2.5f, 3.5f, 4.5f };

__global__ void mod_fill(int *out, int v, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = v + i * 3;
}

// One block: sum @n ints at @p (e.g. a module global) into *out.
__global__ void mod_sum(const int *p, int n, long long *out)
{
	__shared__ long long part[256];
	long long acc = 0;
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		acc += p[i];
	part[threadIdx.x] = acc;
	__syncthreads();
	if (threadIdx.x == 0) {
		long long s = 0;
		for (unsigned int t = 0; t < blockDim.x; t++)
			s += part[t];
		*out = s;
	}
}

// An int then a double: the parameter buffer has a hole at offset 4.
__global__ void mod_mix(int a, double b, float *out, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = (float)(a * i) + (float)b;
}

} // extern "C"
