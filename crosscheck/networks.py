"""The conv and pooling layers of real networks at their real sizes, batch 1, as data.

Kernel libraries pick other algorithms at real sizes (blocked, Winograd, implicit
GEMM, other accumulation orders) than at the tiny sizes of the random sweeps, so
``--cases networks`` runs the layers of seven networks as they are: every conv and
pooling layer of the reference implementation, in its order, with the input it
sees on the network's standard input (batch 1). The tables below are the data,
one row per layer::

    layer name  op family  input  C_in  C_out  options

``input`` is the layer's spatial size (``224x224``, ``16000``, ``16x112x112``, so
the rank is the number of sizes); pools write ``-`` for C_out. Options: ``k=``
kernel, ``s=`` stride (convs default 1, pools their kernel), ``p=`` padding on both
sides of each axis (default 0), ``g=`` groups, ``out=`` an adaptive pool's output
size, ``bias`` for a conv with a bias (the others have none: a norm follows them).
A value with ``x`` gives one entry per axis (``k=1x7``). Layer names are the
modules' names in the reference implementation; a pooling done by a functional
call in ``forward`` is named after the call (``Mixed_5b.avg_pool2d``).

Layers that repeat a geometry (same op, shapes and options) become one case whose
``tags`` name every layer that shares it, as ``"<network> <layer>"``; the case ids
are the op table's, so they parse back. Where two networks share a geometry, the
case carries both networks' layers.

Where the shapes come from (the structure of the reference implementations, the
sizes that follow from the standard input):

* ``resnet50``: He et al. 2015 (arXiv:1512.03385), torchvision ``resnet50``
  (stride on the 3x3 of each bottleneck), 224x224;
* ``vgg16``: Simonyan and Zisserman 2014 (arXiv:1409.1556) configuration D,
  torchvision ``vgg16``, 224x224;
* ``mobilenet_v2``: Sandler et al. 2018 (arXiv:1801.04381) Table 2, torchvision
  ``mobilenet_v2``, 224x224;
* ``efficientnet_b0``: Tan and Le 2019 (arXiv:1905.11946) Table 1, torchvision
  ``efficientnet_b0`` (squeeze-and-excitation of ``C_in // 4`` channels, its 1x1
  convs with bias on the pooled 1x1 map), 224x224;
* ``inception_v3``: Szegedy et al. 2015 (arXiv:1512.00567), torchvision
  ``inception_v3`` with its auxiliary classifier (a training-time branch), 299x299;
* ``wav2vec2``: Baevski et al. 2020 (arXiv:2006.11477), fairseq's
  ``ConvFeatureExtractionModel``: seven convs of 512 channels, kernels
  (10, 3, 3, 3, 3, 2, 2), strides (5, 2, 2, 2, 2, 2, 2), no bias, on one second of
  16 kHz audio (16000 samples, 49 frames out);
* ``r3d_18``: Tran et al. 2018 (arXiv:1711.11248), torchvision ``r3d_18`` on
  16-frame 112x112 clips (it has no max pooling: the stem strides instead).

Cases come in float32 and a half type: float16, which torch on CPU runs for every
family here, forward and backward (a backend that cannot run a dtype says so with
an ``unsupported`` verdict, it does not fail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from crosscheck.cases import Case
from crosscheck.ops import DIRECTIONS

#: The half type of the networks sweep (torch runs it on CPU for every family here).
HALF = "float16"

RESNET50 = """
conv1                  conv              224x224        3    64  k=7 s=2 p=3
maxpool                max_pool          112x112       64     -  k=3 s=2 p=1
layer1.0.conv1         conv              56x56         64    64  k=1
layer1.0.conv2         conv              56x56         64    64  k=3 p=1
layer1.0.conv3         conv              56x56         64   256  k=1
layer1.0.downsample.0  conv              56x56         64   256  k=1
layer1.1.conv1         conv              56x56        256    64  k=1
layer1.1.conv2         conv              56x56         64    64  k=3 p=1
layer1.1.conv3         conv              56x56         64   256  k=1
layer1.2.conv1         conv              56x56        256    64  k=1
layer1.2.conv2         conv              56x56         64    64  k=3 p=1
layer1.2.conv3         conv              56x56         64   256  k=1
layer2.0.conv1         conv              56x56        256   128  k=1
layer2.0.conv2         conv              56x56        128   128  k=3 s=2 p=1
layer2.0.conv3         conv              28x28        128   512  k=1
layer2.0.downsample.0  conv              56x56        256   512  k=1 s=2
layer2.1.conv1         conv              28x28        512   128  k=1
layer2.1.conv2         conv              28x28        128   128  k=3 p=1
layer2.1.conv3         conv              28x28        128   512  k=1
layer2.2.conv1         conv              28x28        512   128  k=1
layer2.2.conv2         conv              28x28        128   128  k=3 p=1
layer2.2.conv3         conv              28x28        128   512  k=1
layer2.3.conv1         conv              28x28        512   128  k=1
layer2.3.conv2         conv              28x28        128   128  k=3 p=1
layer2.3.conv3         conv              28x28        128   512  k=1
layer3.0.conv1         conv              28x28        512   256  k=1
layer3.0.conv2         conv              28x28        256   256  k=3 s=2 p=1
layer3.0.conv3         conv              14x14        256  1024  k=1
layer3.0.downsample.0  conv              28x28        512  1024  k=1 s=2
layer3.1.conv1         conv              14x14       1024   256  k=1
layer3.1.conv2         conv              14x14        256   256  k=3 p=1
layer3.1.conv3         conv              14x14        256  1024  k=1
layer3.2.conv1         conv              14x14       1024   256  k=1
layer3.2.conv2         conv              14x14        256   256  k=3 p=1
layer3.2.conv3         conv              14x14        256  1024  k=1
layer3.3.conv1         conv              14x14       1024   256  k=1
layer3.3.conv2         conv              14x14        256   256  k=3 p=1
layer3.3.conv3         conv              14x14        256  1024  k=1
layer3.4.conv1         conv              14x14       1024   256  k=1
layer3.4.conv2         conv              14x14        256   256  k=3 p=1
layer3.4.conv3         conv              14x14        256  1024  k=1
layer3.5.conv1         conv              14x14       1024   256  k=1
layer3.5.conv2         conv              14x14        256   256  k=3 p=1
layer3.5.conv3         conv              14x14        256  1024  k=1
layer4.0.conv1         conv              14x14       1024   512  k=1
layer4.0.conv2         conv              14x14        512   512  k=3 s=2 p=1
layer4.0.conv3         conv              7x7          512  2048  k=1
layer4.0.downsample.0  conv              14x14       1024  2048  k=1 s=2
layer4.1.conv1         conv              7x7         2048   512  k=1
layer4.1.conv2         conv              7x7          512   512  k=3 p=1
layer4.1.conv3         conv              7x7          512  2048  k=1
layer4.2.conv1         conv              7x7         2048   512  k=1
layer4.2.conv2         conv              7x7          512   512  k=3 p=1
layer4.2.conv3         conv              7x7          512  2048  k=1
avgpool                adaptive_avg_pool 7x7         2048     -  out=1
"""

VGG16 = """
features.0   conv              224x224        3    64  k=3 p=1 bias
features.2   conv              224x224       64    64  k=3 p=1 bias
features.4   max_pool          224x224       64     -  k=2
features.5   conv              112x112       64   128  k=3 p=1 bias
features.7   conv              112x112      128   128  k=3 p=1 bias
features.9   max_pool          112x112      128     -  k=2
features.10  conv              56x56        128   256  k=3 p=1 bias
features.12  conv              56x56        256   256  k=3 p=1 bias
features.14  conv              56x56        256   256  k=3 p=1 bias
features.16  max_pool          56x56        256     -  k=2
features.17  conv              28x28        256   512  k=3 p=1 bias
features.19  conv              28x28        512   512  k=3 p=1 bias
features.21  conv              28x28        512   512  k=3 p=1 bias
features.23  max_pool          28x28        512     -  k=2
features.24  conv              14x14        512   512  k=3 p=1 bias
features.26  conv              14x14        512   512  k=3 p=1 bias
features.28  conv              14x14        512   512  k=3 p=1 bias
features.30  max_pool          14x14        512     -  k=2
avgpool      adaptive_avg_pool 7x7          512     -  out=7
"""

MOBILENET_V2 = """
features.0.0          conv              224x224        3    32  k=3 s=2 p=1
features.1.conv.0.0   conv              112x112       32    32  k=3 p=1 g=32
features.1.conv.1     conv              112x112       32    16  k=1
features.2.conv.0.0   conv              112x112       16    96  k=1
features.2.conv.1.0   conv              112x112       96    96  k=3 s=2 p=1 g=96
features.2.conv.2     conv              56x56         96    24  k=1
features.3.conv.0.0   conv              56x56         24   144  k=1
features.3.conv.1.0   conv              56x56        144   144  k=3 p=1 g=144
features.3.conv.2     conv              56x56        144    24  k=1
features.4.conv.0.0   conv              56x56         24   144  k=1
features.4.conv.1.0   conv              56x56        144   144  k=3 s=2 p=1 g=144
features.4.conv.2     conv              28x28        144    32  k=1
features.5.conv.0.0   conv              28x28         32   192  k=1
features.5.conv.1.0   conv              28x28        192   192  k=3 p=1 g=192
features.5.conv.2     conv              28x28        192    32  k=1
features.6.conv.0.0   conv              28x28         32   192  k=1
features.6.conv.1.0   conv              28x28        192   192  k=3 p=1 g=192
features.6.conv.2     conv              28x28        192    32  k=1
features.7.conv.0.0   conv              28x28         32   192  k=1
features.7.conv.1.0   conv              28x28        192   192  k=3 s=2 p=1 g=192
features.7.conv.2     conv              14x14        192    64  k=1
features.8.conv.0.0   conv              14x14         64   384  k=1
features.8.conv.1.0   conv              14x14        384   384  k=3 p=1 g=384
features.8.conv.2     conv              14x14        384    64  k=1
features.9.conv.0.0   conv              14x14         64   384  k=1
features.9.conv.1.0   conv              14x14        384   384  k=3 p=1 g=384
features.9.conv.2     conv              14x14        384    64  k=1
features.10.conv.0.0  conv              14x14         64   384  k=1
features.10.conv.1.0  conv              14x14        384   384  k=3 p=1 g=384
features.10.conv.2    conv              14x14        384    64  k=1
features.11.conv.0.0  conv              14x14         64   384  k=1
features.11.conv.1.0  conv              14x14        384   384  k=3 p=1 g=384
features.11.conv.2    conv              14x14        384    96  k=1
features.12.conv.0.0  conv              14x14         96   576  k=1
features.12.conv.1.0  conv              14x14        576   576  k=3 p=1 g=576
features.12.conv.2    conv              14x14        576    96  k=1
features.13.conv.0.0  conv              14x14         96   576  k=1
features.13.conv.1.0  conv              14x14        576   576  k=3 p=1 g=576
features.13.conv.2    conv              14x14        576    96  k=1
features.14.conv.0.0  conv              14x14         96   576  k=1
features.14.conv.1.0  conv              14x14        576   576  k=3 s=2 p=1 g=576
features.14.conv.2    conv              7x7          576   160  k=1
features.15.conv.0.0  conv              7x7          160   960  k=1
features.15.conv.1.0  conv              7x7          960   960  k=3 p=1 g=960
features.15.conv.2    conv              7x7          960   160  k=1
features.16.conv.0.0  conv              7x7          160   960  k=1
features.16.conv.1.0  conv              7x7          960   960  k=3 p=1 g=960
features.16.conv.2    conv              7x7          960   160  k=1
features.17.conv.0.0  conv              7x7          160   960  k=1
features.17.conv.1.0  conv              7x7          960   960  k=3 p=1 g=960
features.17.conv.2    conv              7x7          960   320  k=1
features.18.0         conv              7x7          320  1280  k=1
adaptive_avg_pool2d   adaptive_avg_pool 7x7         1280     -  out=1
"""

EFFICIENTNET_B0 = """
features.0.0                  conv              224x224        3    32  k=3 s=2 p=1
features.1.0.block.0.0        conv              112x112       32    32  k=3 p=1 g=32
features.1.0.block.1.avgpool  adaptive_avg_pool 112x112       32     -  out=1
features.1.0.block.1.fc1      conv              1x1           32     8  k=1 bias
features.1.0.block.1.fc2      conv              1x1            8    32  k=1 bias
features.1.0.block.2.0        conv              112x112       32    16  k=1
features.2.0.block.0.0        conv              112x112       16    96  k=1
features.2.0.block.1.0        conv              112x112       96    96  k=3 s=2 p=1 g=96
features.2.0.block.2.avgpool  adaptive_avg_pool 56x56         96     -  out=1
features.2.0.block.2.fc1      conv              1x1           96     4  k=1 bias
features.2.0.block.2.fc2      conv              1x1            4    96  k=1 bias
features.2.0.block.3.0        conv              56x56         96    24  k=1
features.2.1.block.0.0        conv              56x56         24   144  k=1
features.2.1.block.1.0        conv              56x56        144   144  k=3 p=1 g=144
features.2.1.block.2.avgpool  adaptive_avg_pool 56x56        144     -  out=1
features.2.1.block.2.fc1      conv              1x1          144     6  k=1 bias
features.2.1.block.2.fc2      conv              1x1            6   144  k=1 bias
features.2.1.block.3.0        conv              56x56        144    24  k=1
features.3.0.block.0.0        conv              56x56         24   144  k=1
features.3.0.block.1.0        conv              56x56        144   144  k=5 s=2 p=2 g=144
features.3.0.block.2.avgpool  adaptive_avg_pool 28x28        144     -  out=1
features.3.0.block.2.fc1      conv              1x1          144     6  k=1 bias
features.3.0.block.2.fc2      conv              1x1            6   144  k=1 bias
features.3.0.block.3.0        conv              28x28        144    40  k=1
features.3.1.block.0.0        conv              28x28         40   240  k=1
features.3.1.block.1.0        conv              28x28        240   240  k=5 p=2 g=240
features.3.1.block.2.avgpool  adaptive_avg_pool 28x28        240     -  out=1
features.3.1.block.2.fc1      conv              1x1          240    10  k=1 bias
features.3.1.block.2.fc2      conv              1x1           10   240  k=1 bias
features.3.1.block.3.0        conv              28x28        240    40  k=1
features.4.0.block.0.0        conv              28x28         40   240  k=1
features.4.0.block.1.0        conv              28x28        240   240  k=3 s=2 p=1 g=240
features.4.0.block.2.avgpool  adaptive_avg_pool 14x14        240     -  out=1
features.4.0.block.2.fc1      conv              1x1          240    10  k=1 bias
features.4.0.block.2.fc2      conv              1x1           10   240  k=1 bias
features.4.0.block.3.0        conv              14x14        240    80  k=1
features.4.1.block.0.0        conv              14x14         80   480  k=1
features.4.1.block.1.0        conv              14x14        480   480  k=3 p=1 g=480
features.4.1.block.2.avgpool  adaptive_avg_pool 14x14        480     -  out=1
features.4.1.block.2.fc1      conv              1x1          480    20  k=1 bias
features.4.1.block.2.fc2      conv              1x1           20   480  k=1 bias
features.4.1.block.3.0        conv              14x14        480    80  k=1
features.4.2.block.0.0        conv              14x14         80   480  k=1
features.4.2.block.1.0        conv              14x14        480   480  k=3 p=1 g=480
features.4.2.block.2.avgpool  adaptive_avg_pool 14x14        480     -  out=1
features.4.2.block.2.fc1      conv              1x1          480    20  k=1 bias
features.4.2.block.2.fc2      conv              1x1           20   480  k=1 bias
features.4.2.block.3.0        conv              14x14        480    80  k=1
features.5.0.block.0.0        conv              14x14         80   480  k=1
features.5.0.block.1.0        conv              14x14        480   480  k=5 p=2 g=480
features.5.0.block.2.avgpool  adaptive_avg_pool 14x14        480     -  out=1
features.5.0.block.2.fc1      conv              1x1          480    20  k=1 bias
features.5.0.block.2.fc2      conv              1x1           20   480  k=1 bias
features.5.0.block.3.0        conv              14x14        480   112  k=1
features.5.1.block.0.0        conv              14x14        112   672  k=1
features.5.1.block.1.0        conv              14x14        672   672  k=5 p=2 g=672
features.5.1.block.2.avgpool  adaptive_avg_pool 14x14        672     -  out=1
features.5.1.block.2.fc1      conv              1x1          672    28  k=1 bias
features.5.1.block.2.fc2      conv              1x1           28   672  k=1 bias
features.5.1.block.3.0        conv              14x14        672   112  k=1
features.5.2.block.0.0        conv              14x14        112   672  k=1
features.5.2.block.1.0        conv              14x14        672   672  k=5 p=2 g=672
features.5.2.block.2.avgpool  adaptive_avg_pool 14x14        672     -  out=1
features.5.2.block.2.fc1      conv              1x1          672    28  k=1 bias
features.5.2.block.2.fc2      conv              1x1           28   672  k=1 bias
features.5.2.block.3.0        conv              14x14        672   112  k=1
features.6.0.block.0.0        conv              14x14        112   672  k=1
features.6.0.block.1.0        conv              14x14        672   672  k=5 s=2 p=2 g=672
features.6.0.block.2.avgpool  adaptive_avg_pool 7x7          672     -  out=1
features.6.0.block.2.fc1      conv              1x1          672    28  k=1 bias
features.6.0.block.2.fc2      conv              1x1           28   672  k=1 bias
features.6.0.block.3.0        conv              7x7          672   192  k=1
features.6.1.block.0.0        conv              7x7          192  1152  k=1
features.6.1.block.1.0        conv              7x7         1152  1152  k=5 p=2 g=1152
features.6.1.block.2.avgpool  adaptive_avg_pool 7x7         1152     -  out=1
features.6.1.block.2.fc1      conv              1x1         1152    48  k=1 bias
features.6.1.block.2.fc2      conv              1x1           48  1152  k=1 bias
features.6.1.block.3.0        conv              7x7         1152   192  k=1
features.6.2.block.0.0        conv              7x7          192  1152  k=1
features.6.2.block.1.0        conv              7x7         1152  1152  k=5 p=2 g=1152
features.6.2.block.2.avgpool  adaptive_avg_pool 7x7         1152     -  out=1
features.6.2.block.2.fc1      conv              1x1         1152    48  k=1 bias
features.6.2.block.2.fc2      conv              1x1           48  1152  k=1 bias
features.6.2.block.3.0        conv              7x7         1152   192  k=1
features.6.3.block.0.0        conv              7x7          192  1152  k=1
features.6.3.block.1.0        conv              7x7         1152  1152  k=5 p=2 g=1152
features.6.3.block.2.avgpool  adaptive_avg_pool 7x7         1152     -  out=1
features.6.3.block.2.fc1      conv              1x1         1152    48  k=1 bias
features.6.3.block.2.fc2      conv              1x1           48  1152  k=1 bias
features.6.3.block.3.0        conv              7x7         1152   192  k=1
features.7.0.block.0.0        conv              7x7          192  1152  k=1
features.7.0.block.1.0        conv              7x7         1152  1152  k=3 p=1 g=1152
features.7.0.block.2.avgpool  adaptive_avg_pool 7x7         1152     -  out=1
features.7.0.block.2.fc1      conv              1x1         1152    48  k=1 bias
features.7.0.block.2.fc2      conv              1x1           48  1152  k=1 bias
features.7.0.block.3.0        conv              7x7         1152   320  k=1
features.8.0                  conv              7x7          320  1280  k=1
avgpool                       adaptive_avg_pool 7x7         1280     -  out=1
"""

INCEPTION_V3 = """
Conv2d_1a_3x3.conv             conv              299x299        3    32  k=3 s=2
Conv2d_2a_3x3.conv             conv              149x149       32    32  k=3
Conv2d_2b_3x3.conv             conv              147x147       32    64  k=3 p=1
maxpool1                       max_pool          147x147       64     -  k=3 s=2
Conv2d_3b_1x1.conv             conv              73x73         64    80  k=1
Conv2d_4a_3x3.conv             conv              73x73         80   192  k=3
maxpool2                       max_pool          71x71        192     -  k=3 s=2
Mixed_5b.branch1x1.conv        conv              35x35        192    64  k=1
Mixed_5b.branch5x5_1.conv      conv              35x35        192    48  k=1
Mixed_5b.branch5x5_2.conv      conv              35x35         48    64  k=5 p=2
Mixed_5b.branch3x3dbl_1.conv   conv              35x35        192    64  k=1
Mixed_5b.branch3x3dbl_2.conv   conv              35x35         64    96  k=3 p=1
Mixed_5b.branch3x3dbl_3.conv   conv              35x35         96    96  k=3 p=1
Mixed_5b.avg_pool2d            avg_pool          35x35        192     -  k=3 s=1 p=1
Mixed_5b.branch_pool.conv      conv              35x35        192    32  k=1
Mixed_5c.branch1x1.conv        conv              35x35        256    64  k=1
Mixed_5c.branch5x5_1.conv      conv              35x35        256    48  k=1
Mixed_5c.branch5x5_2.conv      conv              35x35         48    64  k=5 p=2
Mixed_5c.branch3x3dbl_1.conv   conv              35x35        256    64  k=1
Mixed_5c.branch3x3dbl_2.conv   conv              35x35         64    96  k=3 p=1
Mixed_5c.branch3x3dbl_3.conv   conv              35x35         96    96  k=3 p=1
Mixed_5c.avg_pool2d            avg_pool          35x35        256     -  k=3 s=1 p=1
Mixed_5c.branch_pool.conv      conv              35x35        256    64  k=1
Mixed_5d.branch1x1.conv        conv              35x35        288    64  k=1
Mixed_5d.branch5x5_1.conv      conv              35x35        288    48  k=1
Mixed_5d.branch5x5_2.conv      conv              35x35         48    64  k=5 p=2
Mixed_5d.branch3x3dbl_1.conv   conv              35x35        288    64  k=1
Mixed_5d.branch3x3dbl_2.conv   conv              35x35         64    96  k=3 p=1
Mixed_5d.branch3x3dbl_3.conv   conv              35x35         96    96  k=3 p=1
Mixed_5d.avg_pool2d            avg_pool          35x35        288     -  k=3 s=1 p=1
Mixed_5d.branch_pool.conv      conv              35x35        288    64  k=1
Mixed_6a.branch3x3.conv        conv              35x35        288   384  k=3 s=2
Mixed_6a.branch3x3dbl_1.conv   conv              35x35        288    64  k=1
Mixed_6a.branch3x3dbl_2.conv   conv              35x35         64    96  k=3 p=1
Mixed_6a.branch3x3dbl_3.conv   conv              35x35         96    96  k=3 s=2
Mixed_6a.max_pool2d            max_pool          35x35        288     -  k=3 s=2
Mixed_6b.branch1x1.conv        conv              17x17        768   192  k=1
Mixed_6b.branch7x7_1.conv      conv              17x17        768   128  k=1
Mixed_6b.branch7x7_2.conv      conv              17x17        128   128  k=1x7 p=0x3
Mixed_6b.branch7x7_3.conv      conv              17x17        128   192  k=7x1 p=3x0
Mixed_6b.branch7x7dbl_1.conv   conv              17x17        768   128  k=1
Mixed_6b.branch7x7dbl_2.conv   conv              17x17        128   128  k=7x1 p=3x0
Mixed_6b.branch7x7dbl_3.conv   conv              17x17        128   128  k=1x7 p=0x3
Mixed_6b.branch7x7dbl_4.conv   conv              17x17        128   128  k=7x1 p=3x0
Mixed_6b.branch7x7dbl_5.conv   conv              17x17        128   192  k=1x7 p=0x3
Mixed_6b.avg_pool2d            avg_pool          17x17        768     -  k=3 s=1 p=1
Mixed_6b.branch_pool.conv      conv              17x17        768   192  k=1
Mixed_6c.branch1x1.conv        conv              17x17        768   192  k=1
Mixed_6c.branch7x7_1.conv      conv              17x17        768   160  k=1
Mixed_6c.branch7x7_2.conv      conv              17x17        160   160  k=1x7 p=0x3
Mixed_6c.branch7x7_3.conv      conv              17x17        160   192  k=7x1 p=3x0
Mixed_6c.branch7x7dbl_1.conv   conv              17x17        768   160  k=1
Mixed_6c.branch7x7dbl_2.conv   conv              17x17        160   160  k=7x1 p=3x0
Mixed_6c.branch7x7dbl_3.conv   conv              17x17        160   160  k=1x7 p=0x3
Mixed_6c.branch7x7dbl_4.conv   conv              17x17        160   160  k=7x1 p=3x0
Mixed_6c.branch7x7dbl_5.conv   conv              17x17        160   192  k=1x7 p=0x3
Mixed_6c.avg_pool2d            avg_pool          17x17        768     -  k=3 s=1 p=1
Mixed_6c.branch_pool.conv      conv              17x17        768   192  k=1
Mixed_6d.branch1x1.conv        conv              17x17        768   192  k=1
Mixed_6d.branch7x7_1.conv      conv              17x17        768   160  k=1
Mixed_6d.branch7x7_2.conv      conv              17x17        160   160  k=1x7 p=0x3
Mixed_6d.branch7x7_3.conv      conv              17x17        160   192  k=7x1 p=3x0
Mixed_6d.branch7x7dbl_1.conv   conv              17x17        768   160  k=1
Mixed_6d.branch7x7dbl_2.conv   conv              17x17        160   160  k=7x1 p=3x0
Mixed_6d.branch7x7dbl_3.conv   conv              17x17        160   160  k=1x7 p=0x3
Mixed_6d.branch7x7dbl_4.conv   conv              17x17        160   160  k=7x1 p=3x0
Mixed_6d.branch7x7dbl_5.conv   conv              17x17        160   192  k=1x7 p=0x3
Mixed_6d.avg_pool2d            avg_pool          17x17        768     -  k=3 s=1 p=1
Mixed_6d.branch_pool.conv      conv              17x17        768   192  k=1
Mixed_6e.branch1x1.conv        conv              17x17        768   192  k=1
Mixed_6e.branch7x7_1.conv      conv              17x17        768   192  k=1
Mixed_6e.branch7x7_2.conv      conv              17x17        192   192  k=1x7 p=0x3
Mixed_6e.branch7x7_3.conv      conv              17x17        192   192  k=7x1 p=3x0
Mixed_6e.branch7x7dbl_1.conv   conv              17x17        768   192  k=1
Mixed_6e.branch7x7dbl_2.conv   conv              17x17        192   192  k=7x1 p=3x0
Mixed_6e.branch7x7dbl_3.conv   conv              17x17        192   192  k=1x7 p=0x3
Mixed_6e.branch7x7dbl_4.conv   conv              17x17        192   192  k=7x1 p=3x0
Mixed_6e.branch7x7dbl_5.conv   conv              17x17        192   192  k=1x7 p=0x3
Mixed_6e.avg_pool2d            avg_pool          17x17        768     -  k=3 s=1 p=1
Mixed_6e.branch_pool.conv      conv              17x17        768   192  k=1
AuxLogits.avg_pool2d           avg_pool          17x17        768     -  k=5 s=3
AuxLogits.conv0.conv           conv              5x5          768   128  k=1
AuxLogits.conv1.conv           conv              5x5          128   768  k=5
AuxLogits.adaptive_avg_pool2d  adaptive_avg_pool 1x1          768     -  out=1
Mixed_7a.branch3x3_1.conv      conv              17x17        768   192  k=1
Mixed_7a.branch3x3_2.conv      conv              17x17        192   320  k=3 s=2
Mixed_7a.branch7x7x3_1.conv    conv              17x17        768   192  k=1
Mixed_7a.branch7x7x3_2.conv    conv              17x17        192   192  k=1x7 p=0x3
Mixed_7a.branch7x7x3_3.conv    conv              17x17        192   192  k=7x1 p=3x0
Mixed_7a.branch7x7x3_4.conv    conv              17x17        192   192  k=3 s=2
Mixed_7a.max_pool2d            max_pool          17x17        768     -  k=3 s=2
Mixed_7b.branch1x1.conv        conv              8x8         1280   320  k=1
Mixed_7b.branch3x3_1.conv      conv              8x8         1280   384  k=1
Mixed_7b.branch3x3_2a.conv     conv              8x8          384   384  k=1x3 p=0x1
Mixed_7b.branch3x3_2b.conv     conv              8x8          384   384  k=3x1 p=1x0
Mixed_7b.branch3x3dbl_1.conv   conv              8x8         1280   448  k=1
Mixed_7b.branch3x3dbl_2.conv   conv              8x8          448   384  k=3 p=1
Mixed_7b.branch3x3dbl_3a.conv  conv              8x8          384   384  k=1x3 p=0x1
Mixed_7b.branch3x3dbl_3b.conv  conv              8x8          384   384  k=3x1 p=1x0
Mixed_7b.avg_pool2d            avg_pool          8x8         1280     -  k=3 s=1 p=1
Mixed_7b.branch_pool.conv      conv              8x8         1280   192  k=1
Mixed_7c.branch1x1.conv        conv              8x8         2048   320  k=1
Mixed_7c.branch3x3_1.conv      conv              8x8         2048   384  k=1
Mixed_7c.branch3x3_2a.conv     conv              8x8          384   384  k=1x3 p=0x1
Mixed_7c.branch3x3_2b.conv     conv              8x8          384   384  k=3x1 p=1x0
Mixed_7c.branch3x3dbl_1.conv   conv              8x8         2048   448  k=1
Mixed_7c.branch3x3dbl_2.conv   conv              8x8          448   384  k=3 p=1
Mixed_7c.branch3x3dbl_3a.conv  conv              8x8          384   384  k=1x3 p=0x1
Mixed_7c.branch3x3dbl_3b.conv  conv              8x8          384   384  k=3x1 p=1x0
Mixed_7c.avg_pool2d            avg_pool          8x8         2048     -  k=3 s=1 p=1
Mixed_7c.branch_pool.conv      conv              8x8         2048   192  k=1
avgpool                        adaptive_avg_pool 8x8         2048     -  out=1
"""

WAV2VEC2 = """
feature_extractor.conv_layers.0.0  conv              16000          1   512  k=10 s=5
feature_extractor.conv_layers.1.0  conv              3199         512   512  k=3 s=2
feature_extractor.conv_layers.2.0  conv              1599         512   512  k=3 s=2
feature_extractor.conv_layers.3.0  conv              799          512   512  k=3 s=2
feature_extractor.conv_layers.4.0  conv              399          512   512  k=3 s=2
feature_extractor.conv_layers.5.0  conv              199          512   512  k=2 s=2
feature_extractor.conv_layers.6.0  conv              99           512   512  k=2 s=2
"""

R3D_18 = """
stem.0                 conv              16x112x112     3    64  k=3x7x7 s=1x2x2 p=1x3x3
layer1.0.conv1.0       conv              16x56x56      64    64  k=3 p=1
layer1.0.conv2.0       conv              16x56x56      64    64  k=3 p=1
layer1.1.conv1.0       conv              16x56x56      64    64  k=3 p=1
layer1.1.conv2.0       conv              16x56x56      64    64  k=3 p=1
layer2.0.conv1.0       conv              16x56x56      64   128  k=3 s=2 p=1
layer2.0.conv2.0       conv              8x28x28      128   128  k=3 p=1
layer2.0.downsample.0  conv              16x56x56      64   128  k=1 s=2
layer2.1.conv1.0       conv              8x28x28      128   128  k=3 p=1
layer2.1.conv2.0       conv              8x28x28      128   128  k=3 p=1
layer3.0.conv1.0       conv              8x28x28      128   256  k=3 s=2 p=1
layer3.0.conv2.0       conv              4x14x14      256   256  k=3 p=1
layer3.0.downsample.0  conv              8x28x28      128   256  k=1 s=2
layer3.1.conv1.0       conv              4x14x14      256   256  k=3 p=1
layer3.1.conv2.0       conv              4x14x14      256   256  k=3 p=1
layer4.0.conv1.0       conv              4x14x14      256   512  k=3 s=2 p=1
layer4.0.conv2.0       conv              2x7x7        512   512  k=3 p=1
layer4.0.downsample.0  conv              4x14x14      256   512  k=1 s=2
layer4.1.conv1.0       conv              2x7x7        512   512  k=3 p=1
layer4.1.conv2.0       conv              2x7x7        512   512  k=3 p=1
avgpool                adaptive_avg_pool 2x7x7        512     -  out=1
"""

#: network -> its table, in the order the sweep runs them.
TABLES = {
    "resnet50": RESNET50,
    "vgg16": VGG16,
    "mobilenet_v2": MOBILENET_V2,
    "efficientnet_b0": EFFICIENTNET_B0,
    "inception_v3": INCEPTION_V3,
    "wav2vec2": WAV2VEC2,
    "r3d_18": R3D_18,
}

_OPTIONS = {"k": "kernel", "s": "stride", "p": "padding", "g": "groups", "out": "output_size"}


@dataclass(frozen=True)
class Layer:
    """One row of a table: a layer of a network and its forward float64 case (no tags)."""

    network: str
    name: str
    case: Case

    @property
    def tag(self) -> str:
        return f"{self.network} {self.name}"


def _value(text: str):
    sizes = tuple(int(v) for v in text.split("x"))
    return sizes[0] if len(sizes) == 1 else sizes


def _parse_row(network: str, line: str) -> Layer:
    name, family, size, c_in, c_out, *options = line.split()
    spatial = tuple(int(v) for v in size.split("x"))
    params = {} if family != "conv" else {"bias": False}
    for option in options:
        key, _, value = option.partition("=")
        if key == "bias" and not value and family == "conv":
            params["bias"] = True
        elif key in _OPTIONS and value:
            params[_OPTIONS[key]] = _value(value)
        else:
            raise ValueError(f"{network} {name}: unknown option {option!r}")
    if (c_out == "-") == (family == "conv"):
        raise ValueError(f"{network} {name}: C_out is '-' for pools and a number for convs")
    case = Case.of(family, len(spatial), "forward", n=1, spatial=spatial, c_in=int(c_in),
                   c_out=None if c_out == "-" else int(c_out), **params)
    return Layer(network, name, case)


@lru_cache(maxsize=None)
def layers() -> tuple[Layer, ...]:
    """Every row of every table, in table order (repeats included)."""
    return tuple(_parse_row(network, line) for network, table in TABLES.items()
                 for line in table.strip().splitlines())


@lru_cache(maxsize=None)
def geometries() -> tuple[Case, ...]:
    """One forward float64 case per distinct geometry, tagged with every layer that has it."""
    tags: dict[str, list[str]] = {}
    first: dict[str, Case] = {}
    for layer in layers():
        first.setdefault(layer.case.id, layer.case)
        tags.setdefault(layer.case.id, []).append(layer.tag)
    return tuple(case.with_(tags=tuple(tags[key])) for key, case in first.items())


def network_cases(dtypes=("float32", HALF), directions=DIRECTIONS) -> tuple[Case, ...]:
    """The networks sweep: every distinct geometry in each dtype and direction (seed 0).

    Cases of one geometry and dtype are adjacent (forward, then backward), so they
    share a compile key and a worker. Dtypes and directions are checked by :class:`~crosscheck.cases.Case` (any of the op
    table's directions, the higher-order ones included, may be asked for).
    """
    return tuple(g.with_(dtype=dtype, direction=direction)
                 for g in geometries() for dtype in dtypes for direction in directions)


def multiply_adds(case: Case) -> int:
    """Terms the forward sums over the whole output: what a case costs, roughly."""
    return case.n * math.prod(case.out_spatial()) * case.c_out * max(case.reduction_length(), 1)


def slice_cases(count: int, dtypes=("float32", HALF), directions=DIRECTIONS) -> tuple[Case, ...]:
    """A small deterministic slice of :func:`network_cases`: the cheapest layers first,
    taken from each network in turn, each in one dtype and direction (rotating), so a
    short run still sees every network, both dtypes and both directions."""
    variants = [(d, r) for d in dtypes for r in directions]
    by_network: dict[str, list[Case]] = {}
    for g in geometries():
        network = g.tags[0].split(" ", 1)[0]
        by_network.setdefault(network, []).append(g)
    queues = [sorted(gs, key=lambda g: (multiply_adds(g), g.id)) for gs in by_network.values()]
    chosen: list[Case] = []
    for round_ in range(max(map(len, queues), default=0)):
        for i, queue in enumerate(queues):
            if len(chosen) == count:
                return tuple(chosen)
            if round_ < len(queue):
                dtype, direction = variants[(round_ + i) % len(variants)]
                chosen.append(queue[round_].with_(dtype=dtype, direction=direction))
    return tuple(chosen)
