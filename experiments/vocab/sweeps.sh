# The runs of the vocabulary-subsampling factor (see text-tower/sweeps.sh for how they are run).
# Batches of 128 hold about 87 distinct classes of the 1,000, batches of 32 about 27 and of 512
# about 250: vocab.k only matters above that (K 1 and 64 score just the batch's classes).
# K = all at batch 128 is clip-vs-sl's SL run (the same configuration), not run again.
sweep k sl.yaml "vocab.k=1,64,128,256,512 seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml"
sweep weight sl.yaml "vocab.weight=uniform,sqrt vocab.k=128,256 seed=$SEEDS" \
    --set "data=$DATA/lt/dataset.yaml"
sweep batch sl.yaml "batch=32,512 vocab.k=0,1,256 seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml"
sweep text-head sl-text-head.yaml "vocab.k=0,1,128,256 seed=$SEEDS" \
    --set "data=$DATA/lt/dataset.yaml" --set "head_from=$PRE"
# Fashion-MNIST-LT, batches of 16 (about 5 of the 10 classes each); K = all is clip-vs-sl's.
sweep fmnist fmnist-sl.yaml "vocab.k=1,4,6,8 seed=$SEEDS" --compare-args "--split-rule tertile"
