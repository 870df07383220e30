// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title Lode claim contract: a cumulative Merkle distributor.
/// @notice At the close of every epoch the Lode ledger publishes an OpenZeppelin
/// StandardMerkleTree root over (payout address, cumulative amount withdrawn),
/// leaves `keccak256(bytes.concat(keccak256(abi.encode(address, uint256))))`.
/// The owner (later: the validators' certificate) publishes those roots here,
/// each bound to the Lode chain it comes from (the genesis block hash). Anyone
/// may submit a claim for an account; the tokens always go to the account, and
/// an account is paid `cumulative - claimed[account]`, so a claim can never pay
/// more than the ledger says was withdrawn in total.
contract LodeDistributor is Ownable {
    using SafeERC20 for IERC20;

    /// The ERC-20 token paid out (18 decimals, like Lode base units).
    IERC20 public immutable token;
    /// The Lode chain whose roots this contract accepts (its genesis block hash).
    bytes32 public immutable lodeChainId;

    /// The newest published claims root and its epoch.
    bytes32 public root;
    uint64 public epoch;
    /// Every published root by epoch.
    mapping(uint64 => bytes32) public rootOf;
    /// Amount already paid to each account.
    mapping(address => uint256) public claimed;

    event RootPublished(uint64 indexed epoch, bytes32 root);
    event Claimed(address indexed account, uint256 amount, uint256 cumulative);

    /// The root was made by another Lode chain.
    error WrongChain(bytes32 expected, bytes32 got);
    /// Roots are published in increasing epoch order.
    error EpochNotNewer(uint64 last, uint64 got);
    /// An all-zero root (no withdrawals yet) is not publishable.
    error EmptyRoot();
    /// No root has been published yet.
    error NoRoot();
    /// The proof does not prove (account, cumulative) under the current root.
    error InvalidProof();
    /// The account was already paid at least `cumulative`.
    error NothingToClaim(uint256 cumulative, uint256 alreadyClaimed);

    constructor(IERC20 token_, bytes32 lodeChainId_, address owner_) Ownable(owner_) {
        token = token_;
        lodeChainId = lodeChainId_;
    }

    /// Publishes the claims root of `epoch_` of chain `chainId`.
    function publishRoot(bytes32 chainId, uint64 epoch_, bytes32 root_) external onlyOwner {
        if (chainId != lodeChainId) revert WrongChain(lodeChainId, chainId);
        if (root_ == bytes32(0)) revert EmptyRoot();
        if (root != bytes32(0) && epoch_ <= epoch) revert EpochNotNewer(epoch, epoch_);
        root = root_;
        epoch = epoch_;
        rootOf[epoch_] = root_;
        emit RootPublished(epoch_, root_);
    }

    /// Pays `account` what it has not been paid yet of `cumulative`, proven
    /// by `proof` under the newest root. Returns the amount paid.
    function claim(address account, uint256 cumulative, bytes32[] calldata proof)
        external
        returns (uint256 paid)
    {
        bytes32 current = root;
        if (current == bytes32(0)) revert NoRoot();
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulative))));
        if (!MerkleProof.verifyCalldata(proof, current, leaf)) revert InvalidProof();
        uint256 already = claimed[account];
        if (cumulative <= already) revert NothingToClaim(cumulative, already);
        paid = cumulative - already;
        claimed[account] = cumulative;
        emit Claimed(account, paid, cumulative);
        token.safeTransfer(account, paid);
    }
}
