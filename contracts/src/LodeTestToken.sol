// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A plain OpenZeppelin ERC-20 for tests and devnets: the whole supply
/// is minted to `holder` at deployment (e.g. the distributor, or its funder).
contract LodeTestToken is ERC20 {
    constructor(address holder, uint256 supply) ERC20("Lode Test Token", "tLODE") {
        _mint(holder, supply);
    }
}
