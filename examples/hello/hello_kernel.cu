// hello_kernel.cu - the GPU kernel of examples/hello/hello.c.
//
// extern "C" keeps the kernel's name plain ("hello_vec_add"): hello.c, a C
// file, launches it through the runtime API by that name, and the host test
// double finds its host implementation (hello_kernels.c) by it.
extern "C" __global__ void hello_vec_add(const float *a, const float *b,
                                         float *c, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		c[i] = a[i] + b[i];
}
