# The runs of the open-world factor (see text-tower/sweeps.sh for how they are run): the 1,000
# evaluated classes with 0, 500 or 1,000 open-world concepts in training (SL, whose head over
# 2,000 classes makes it the costliest run of the study, at 0 and 1,000 only).
sweep sl sl.yaml "subset=$DATA/open/open-0.subset,$DATA/open/open-1000.subset seed=$SEEDS" \
    --set "data=$DATA/open/dataset.yaml"
sweep clip clip.yaml "subset=$DATA/open/open-0.subset,$DATA/open/open-500.subset,$DATA/open/open-1000.subset seed=$SEEDS" \
    --set "data=$DATA/open/dataset.yaml"
